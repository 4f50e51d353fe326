// Passing a descriptor over a connected unix stream socket (sendmsg + SCM_RIGHTS). Node's net.Socket cannot send
// ancillary data, so out-of-process scanners would otherwise have to reopen the file by path or handle.
//
// Overview: sendFd(socketFd, fd, bytes) -> bytes written. Writes as much of `bytes` as the socket takes now, in
// one sendmsg; the descriptor rides on the first byte. The socket is non-blocking (libuv's): EAGAIN throws with
// code 'EAGAIN' and nothing was sent. Ownership: both descriptors stay the caller's; the kernel installs a new
// descriptor in the receiver. A receiver that reads without a control buffer gets the bytes, and the kernel closes
// the descriptor for it (MSG_CTRUNC): clients that do not want descriptors lose nothing but the fd.
#include <napi.h>
#include <sys/socket.h>
#include <cstring>
#include "common/errors.h"

namespace blessd {
namespace {

int int_arg(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("sendFd: ") + what + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

Napi::Value SendFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int sock = int_arg(info, 0, "socketFd");
  int fd = int_arg(info, 1, "fd");
  if (!info[2].IsBuffer()) throw Napi::TypeError::New(env, "sendFd: bytes must be a Buffer");
  auto bytes = info[2].As<Napi::Buffer<char>>();
  if (bytes.Length() == 0) throw Napi::RangeError::New(env, "sendFd: bytes must not be empty (the fd rides on them)");

  struct iovec iov;
  iov.iov_base = bytes.Data();
  iov.iov_len = bytes.Length();
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  memset(control, 0, sizeof control);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));

  ssize_t n;
  do {
    // MSG_NOSIGNAL: a vanished peer is an EPIPE error here, never a SIGPIPE that kills the daemon.
    n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw errno_error(env, errno, "sendmsg(SCM_RIGHTS)", "socket fd " + std::to_string(sock));
  return Napi::Number::New(env, (double)n);
}

}  // namespace

void InitScmRights(Napi::Env env, Napi::Object exports) {
  exports.Set("sendFd", Napi::Function::New(env, SendFd, "sendFd"));
}

}  // namespace blessd
