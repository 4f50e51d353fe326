// One datagram to a unix socket by path: systemd's notify protocol (sd_notify: READY=1, STATUS=, WATCHDOG=1,
// STOPPING=1). Node's dgram module has no AF_UNIX, and libsystemd would be a dependency for eight lines.
//
// Overview: sendDatagram(path, bytes). A path starting with '@' names the abstract namespace (systemd passes
// NOTIFY_SOCKET that way). Non-blocking: a full receiver throws EAGAIN rather than stalling the main thread.
// The socket is opened and closed per call; notifications are rare (start, stop, a watchdog ping every few s).
#include <napi.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cstring>
#include "common/errors.h"

namespace blessd {
namespace {

Napi::Value SendDatagram(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "sendDatagram: path must be a string");
  if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "sendDatagram: bytes must be a Buffer");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  auto bytes = info[1].As<Napi::Buffer<char>>();

  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) throw Napi::RangeError::New(env, "sendDatagram: path must be 1.." + std::to_string(sizeof addr.sun_path - 1) + " bytes");
  memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path.size());

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) throw errno_error(env, errno, "socket(AF_UNIX, SOCK_DGRAM)");
  ssize_t n;
  do {
    n = sendto(fd, bytes.Data(), bytes.Length(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr *>(&addr), len);
  } while (n < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (n < 0) throw errno_error(env, e, "sendto", path);
  return Napi::Number::New(env, (double)n);
}

}  // namespace

void InitDatagram(Napi::Env env, Napi::Object exports) {
  exports.Set("sendDatagram", Napi::Function::New(env, SendDatagram, "sendDatagram"));
}

}  // namespace blessd
