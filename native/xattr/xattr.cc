// Extended attributes by fd or by path, with XATTR_CREATE / XATTR_REPLACE.
// The tag store's conditional bless depends on XATTR_REPLACE failing with ENODATA when a dirty transition removed
// the "scanning" tag meanwhile; no npm package exposes the flags or the fd variants, hence this file.
// Path variants use the l* calls: a symlink's own attributes, never its target's.
#include <napi.h>
#include <sys/xattr.h>
#include <vector>
#include "common/errors.h"

namespace blessd {
namespace {

struct Target {
  bool by_fd = false;
  int fd = -1;
  std::string path;
  std::string where() const { return by_fd ? "fd " + std::to_string(fd) : path; }
};

Target target_of(const Napi::CallbackInfo &info) {
  Target t;
  if (info[0].IsNumber()) {
    t.by_fd = true;
    t.fd = info[0].As<Napi::Number>().Int32Value();
  } else if (info[0].IsString()) {
    t.path = info[0].As<Napi::String>().Utf8Value();
  } else {
    throw Napi::TypeError::New(info.Env(), "xattr: target must be an fd (number) or a path (string)");
  }
  return t;
}

std::string name_of(const Napi::CallbackInfo &info, size_t i) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), "xattr: name must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// getXattr(target, name) -> Buffer | null (null when the attribute is absent)
Napi::Value Get(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Target t = target_of(info);
  std::string name = name_of(info, 1);
  std::vector<char> buf(256);
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t n = t.by_fd ? fgetxattr(t.fd, name.c_str(), buf.data(), buf.size())
                        : lgetxattr(t.path.c_str(), name.c_str(), buf.data(), buf.size());
    if (n >= 0) return Napi::Buffer<char>::Copy(env, buf.data(), n);
    if (errno == ENODATA) return env.Null();
    if (errno != ERANGE) throw errno_error(env, errno, t.by_fd ? "fgetxattr" : "lgetxattr", t.where());
    // The value grew between calls or is larger than our guess: ask for its size and retry.
    ssize_t need = t.by_fd ? fgetxattr(t.fd, name.c_str(), nullptr, 0) : lgetxattr(t.path.c_str(), name.c_str(), nullptr, 0);
    if (need < 0) {
      if (errno == ENODATA) return env.Null();
      throw errno_error(env, errno, t.by_fd ? "fgetxattr" : "lgetxattr", t.where());
    }
    buf.resize(need + 1);
  }
  throw errno_error(env, ERANGE, t.by_fd ? "fgetxattr" : "lgetxattr", t.where());
}

// setXattr(target, name, value: Buffer, flags: 0 | XATTR_CREATE | XATTR_REPLACE)
Napi::Value Set(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Target t = target_of(info);
  std::string name = name_of(info, 1);
  if (!info[2].IsBuffer()) throw Napi::TypeError::New(env, "xattr: value must be a Buffer");
  auto value = info[2].As<Napi::Buffer<char>>();
  int flags = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int32Value() : 0;
  int r = t.by_fd ? fsetxattr(t.fd, name.c_str(), value.Data(), value.Length(), flags)
                  : lsetxattr(t.path.c_str(), name.c_str(), value.Data(), value.Length(), flags);
  if (r < 0) throw errno_error(env, errno, t.by_fd ? "fsetxattr" : "lsetxattr", t.where());
  return env.Undefined();
}

// removeXattr(target, name) -> true if removed, false if it was not there
Napi::Value Remove(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Target t = target_of(info);
  std::string name = name_of(info, 1);
  int r = t.by_fd ? fremovexattr(t.fd, name.c_str()) : lremovexattr(t.path.c_str(), name.c_str());
  if (r == 0) return Napi::Boolean::New(env, true);
  if (errno == ENODATA) return Napi::Boolean::New(env, false);
  throw errno_error(env, errno, t.by_fd ? "fremovexattr" : "lremovexattr", t.where());
}

// listXattr(target) -> string[]
Napi::Value List(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Target t = target_of(info);
  std::vector<char> buf(1024);
  ssize_t n;
  for (;;) {
    n = t.by_fd ? flistxattr(t.fd, buf.data(), buf.size()) : llistxattr(t.path.c_str(), buf.data(), buf.size());
    if (n >= 0) break;
    if (errno != ERANGE) throw errno_error(env, errno, t.by_fd ? "flistxattr" : "llistxattr", t.where());
    ssize_t need = t.by_fd ? flistxattr(t.fd, nullptr, 0) : llistxattr(t.path.c_str(), nullptr, 0);
    if (need < 0) throw errno_error(env, errno, t.by_fd ? "flistxattr" : "llistxattr", t.where());
    buf.resize(need + 64);
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t k = 0;
  for (ssize_t i = 0; i < n;) {
    size_t len = strnlen(buf.data() + i, n - i);
    out.Set(k++, Napi::String::New(env, buf.data() + i, len));
    i += len + 1;
  }
  return out;
}

}  // namespace

void InitXattr(Napi::Env env, Napi::Object exports) {
  exports.Set("getXattr", Napi::Function::New(env, Get, "getXattr"));
  exports.Set("setXattr", Napi::Function::New(env, Set, "setXattr"));
  exports.Set("removeXattr", Napi::Function::New(env, Remove, "removeXattr"));
  exports.Set("listXattr", Napi::Function::New(env, List, "listXattr"));
  exports.Set("XATTR_CREATE", Napi::Number::New(env, XATTR_CREATE));
  exports.Set("XATTR_REPLACE", Napi::Number::New(env, XATTR_REPLACE));
}

}  // namespace blessd
