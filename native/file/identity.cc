// File identity beyond stat(): the inode generation (FS_IOC_GETVERSION) and file handles
// (name_to_handle_at / open_by_handle_at). A tag's stamp carries (ino, generation) so that a recycled inode number
// cannot inherit another file's verdict, and the change group reports files by handle only.
#include <napi.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <vector>
#include "common/errors.h"

namespace blessd {
namespace {

int fd_arg(const Napi::CallbackInfo &info, size_t i) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), "expected an fd (number)");
  return info[i].As<Napi::Number>().Int32Value();
}

// inodeGeneration(fd) -> number | null (null where the filesystem keeps none: ENOTTY / EOPNOTSUPP)
Napi::Value Generation(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = fd_arg(info, 0);
  unsigned int gen = 0;  // the kernel writes an int-sized value despite the long in the macro
  if (ioctl(fd, FS_IOC_GETVERSION, &gen) == 0) return Napi::Number::New(env, gen);
  if (errno == ENOTTY || errno == EOPNOTSUPP || errno == EINVAL) return env.Null();
  throw errno_error(env, errno, "ioctl(FS_IOC_GETVERSION)", "fd " + std::to_string(fd));
}

// fileHandle(fd | path) -> { type, handle: Buffer, mountId }
Napi::Value Handle(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::vector<char> storage(sizeof(struct file_handle) + MAX_HANDLE_SZ);
  auto *fh = reinterpret_cast<struct file_handle *>(storage.data());
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  int r;
  std::string where;
  if (info[0].IsNumber()) {
    int fd = info[0].As<Napi::Number>().Int32Value();
    where = "fd " + std::to_string(fd);
    r = name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH);
  } else if (info[0].IsString()) {
    where = info[0].As<Napi::String>().Utf8Value();
    r = name_to_handle_at(AT_FDCWD, where.c_str(), fh, &mount_id, 0);
  } else {
    throw Napi::TypeError::New(env, "fileHandle: expected an fd or a path");
  }
  if (r < 0) throw errno_error(env, errno, "name_to_handle_at", where);
  Napi::Object out = Napi::Object::New(env);
  out.Set("type", Napi::Number::New(env, fh->handle_type));
  out.Set("handle", Napi::Buffer<char>::Copy(env, reinterpret_cast<char *>(fh->f_handle), fh->handle_bytes));
  out.Set("mountId", Napi::Number::New(env, mount_id));
  return out;
}

// openByHandle(mountFd, type, handle: Buffer, flags) -> fd (caller owns it)
Napi::Value OpenByHandle(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int mount_fd = fd_arg(info, 0);
  int type = info[1].As<Napi::Number>().Int32Value();
  if (!info[2].IsBuffer()) throw Napi::TypeError::New(env, "openByHandle: handle must be a Buffer");
  auto bytes = info[2].As<Napi::Buffer<char>>();
  if (bytes.Length() > MAX_HANDLE_SZ) throw Napi::RangeError::New(env, "openByHandle: handle longer than MAX_HANDLE_SZ");
  int flags = info.Length() > 3 ? info[3].As<Napi::Number>().Int32Value() : O_RDONLY;
  std::vector<char> storage(sizeof(struct file_handle) + bytes.Length());
  auto *fh = reinterpret_cast<struct file_handle *>(storage.data());
  fh->handle_bytes = bytes.Length();
  fh->handle_type = type;
  memcpy(fh->f_handle, bytes.Data(), bytes.Length());
  int fd = open_by_handle_at(mount_fd, fh, flags | O_CLOEXEC);
  if (fd < 0) throw errno_error(env, errno, "open_by_handle_at");
  return Napi::Number::New(env, fd);
}

// dupFd(fd) -> a new fd on the same open file (caller owns it). Node has no dup(); a scan that outlives the
// permission event it came with keeps its own descriptor, so the gate may close the event's.
Napi::Value DupFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = fd_arg(info, 0);
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (r < 0) throw errno_error(env, errno, "fcntl(F_DUPFD_CLOEXEC)", "fd " + std::to_string(fd));
  return Napi::Number::New(env, r);
}

// closeFd(fd): close a descriptor dupFd made, from any thread. A worker thread that closes, through node:fs, a
// descriptor it did not open gets a warning per fd ("closed but not opened in unmanaged mode"): a scan in a
// worker that outlives its file's verdict closes its own dup here instead.
Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = fd_arg(info, 0);
  if (close(fd) < 0 && errno != EINTR) throw errno_error(env, errno, "close", "fd " + std::to_string(fd));
  return env.Undefined();
}

}  // namespace

void InitIdentity(Napi::Env env, Napi::Object exports) {
  exports.Set("inodeGeneration", Napi::Function::New(env, Generation, "inodeGeneration"));
  exports.Set("fileHandle", Napi::Function::New(env, Handle, "fileHandle"));
  exports.Set("openByHandle", Napi::Function::New(env, OpenByHandle, "openByHandle"));
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
}

}  // namespace blessd
