// Who is at the other end of a unix socket: getsockopt(SO_PEERCRED). The socket file's mode and group decide who
// may connect at all; the peer's uid decides which operations it may use (only root may reload, bump generations
// or register a scanner, whose pid then reads guarded files ungated).
//
// peerCred(socketFd) -> { pid, uid, gid }: the credentials the peer had when it connected (the kernel records them
// at connect(), so a later setuid in the peer changes nothing here).
#include <napi.h>
#include <sys/socket.h>
#include "common/errors.h"

namespace blessd {
namespace {

Napi::Value PeerCred(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "peerCred: expected a socket fd (number)");
  int sock = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    throw errno_error(env, errno, "getsockopt(SO_PEERCRED)", "socket fd " + std::to_string(sock));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("pid", Napi::Number::New(env, cred.pid));
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  return out;
}

}  // namespace

void InitPeerCred(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCred", Napi::Function::New(env, PeerCred, "peerCred"));
}

}  // namespace blessd
