// Overview — naming the calling thread (prctl PR_SET_NAME), so that /proc/<pid>/task/*/comm, top and perf tell the
// daemon's threads apart: node names none of its worker threads ("node" for all). The pool workers call it at start
// (bench/cold prints CPU per thread by these names). Owns nothing; must not be used for anything but display.
#include <napi.h>
#include <sys/prctl.h>
#include <string>
#include "common/errors.h"

namespace blessd {
namespace {

// setThreadName(name) -> undefined; the kernel keeps the first 15 bytes
Napi::Value SetThreadName(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "setThreadName: expected a name (string)");
  std::string name = info[0].As<Napi::String>().Utf8Value().substr(0, 15);
  if (prctl(PR_SET_NAME, name.c_str(), 0, 0, 0) != 0) throw errno_error(env, errno, "prctl(PR_SET_NAME)", name);
  return env.Undefined();
}

}  // namespace

void InitThreadName(Napi::Env env, Napi::Object exports) { exports.Set("setThreadName", Napi::Function::New(env, SetThreadName)); }

}  // namespace blessd
