// Turning a failed syscall into a JS Error that carries .code, .errno and .syscall, the way node's own fs does,
// so that TypeScript can branch on err.code === 'ENODATA' instead of parsing messages.
#pragma once
#include <napi.h>
#include <cerrno>
#include <cstring>
#include <string>

namespace blessd {

inline const char *errno_code(int e) {
  switch (e) {
#define C(x) case x: return #x;
    C(EPERM) C(ENOENT) C(EIO) C(EBADF) C(EAGAIN) C(ENOMEM) C(EACCES) C(EFAULT) C(EBUSY) C(EEXIST) C(EXDEV)
    C(ENODEV) C(ENOTDIR) C(EISDIR) C(EINVAL) C(ENFILE) C(EMFILE) C(ETXTBSY) C(EFBIG) C(ENOSPC) C(EROFS)
    C(ERANGE) C(ENOSYS) C(ENODATA) C(EOPNOTSUPP) C(ESTALE) C(EDQUOT) C(E2BIG) C(ELOOP) C(ENAMETOOLONG)
    C(EOVERFLOW) C(ENOTTY)
#undef C
    default: return "EUNKNOWN";
  }
}

inline Napi::Error errno_error(Napi::Env env, int e, const char *syscall, const std::string &where = "") {
  std::string msg = std::string(errno_code(e)) + ": " + strerror(e) + ", " + syscall;
  if (!where.empty()) msg += " '" + where + "'";
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, errno_code(e)));
  err.Set("errno", Napi::Number::New(env, -e));
  err.Set("syscall", Napi::String::New(env, syscall));
  if (!where.empty()) err.Set("path", Napi::String::New(env, where));
  return err;
}

}  // namespace blessd
