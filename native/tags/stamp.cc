// Overview — a tag's stamp in one call: fstat + FS_IOC_GETVERSION of an open file, written into a BigInt64Array the
// caller keeps (tagStamp(fd, out)). Why by hand: fs.fstatSync builds a Stats object with four Dates (or BigInts
// for every field) per call, and the tag store reads the stamp several times per scanned file (read, lease,
// result write and its ctime check); the profile put fstat at the top of the pool workers' self time.
// Owns nothing: the fd is the caller's. Must not: open, close or keep anything.
#include <napi.h>
#include <sys/stat.h>
#include "common/errors.h"
#include "tags/read.h"

namespace blessd {
namespace {

// Slots of the out array, in the order src/tags/stamp.ts reads them.
enum { kIno, kIgen, kSize, kMtimeNs, kCtimeNs, kSlots };

// tagStamp(fd, out: BigInt64Array(5)) -> undefined; out = [ino, igen (0 where none), size, mtime ns, ctime ns]
Napi::Value TagStamp(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "tagStamp: expected an fd (number)");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_bigint64_array ||
      info[1].As<Napi::TypedArray>().ElementLength() < kSlots)
    throw Napi::TypeError::New(env, "tagStamp: out must be a BigInt64Array of at least 5 elements");
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto out = info[1].As<Napi::TypedArrayOf<int64_t>>();
  // The same fstat + generation the reader thread stamps with (tags/read.cc); a missing generation (tmpfs) is 0.
  FileStamp stamp;
  struct stat st;
  uint32_t gen = 0;
  if (!read_stamp(fd, stamp, &st, &gen)) throw errno_error(env, errno, "fstat", "fd " + std::to_string(fd));
  out[kIno] = static_cast<int64_t>(st.st_ino);
  out[kIgen] = static_cast<int64_t>(gen);
  out[kSize] = static_cast<int64_t>(st.st_size);
  out[kMtimeNs] = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  out[kCtimeNs] = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000LL + st.st_ctim.tv_nsec;
  return env.Undefined();
}

}  // namespace

void InitTagStamp(Napi::Env env, Napi::Object exports) { exports.Set("tagStamp", Napi::Function::New(env, TagStamp)); }

}  // namespace blessd
