// Overview — the write side of the tag store, one native call per step of the conditional bless:
//   tagBegin(writer, fd, scanner, out)  stamp + lease value + MAC + fsetxattr(XATTR_CREATE);
//   tagFinish(writer, fd, scanner, token, answer, reason, generation, digest, bound)
//                                       fgetxattr (is the lease still ours?) + fstat (is the file as leased?) +
//                                       result value + MAC + fsetxattr(XATTR_REPLACE) + the ctime-mode landing check.
// TagStore (src/tags/store.ts) calls these and nothing else writes a lease or a result, so the rules live here once:
// a lease is taken only where no tag is (CREATE; the kernel grants it to one racer), a result lands only over our
// own lease, bound to the stamp the lease recorded, and never after a dirty transition removed the lease (REPLACE
// fails with ENODATA). What stays in TypeScript is what is judged, not written: the takeover of an existing tag
// (takeover.ts, holder.ts: tagBegin hands back the value to take it over with), abort, releaseHeld, and reading.
// The text is codec.ts's format, byte for byte (test/tags-write.test.ts re-encodes every value written here with
// encodeTag and compares).
// Why native: in JavaScript these two steps were ~15 calls into the addon per scanned file, each with its strings,
// Buffers and BigInts (two stamps, three MACs, a decode), the largest self time of the pool workers.
// Owns nothing: the fd is the caller's. Must not open, close or keep anything but the writer's settings.
#include <napi.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <cmath>
#include <cstring>
#include "common/errors.h"
#include "tags/read.h"
#include "tags/settle.h"
#include "tags/verify.h"

namespace blessd {
namespace {

// codec.ts limits, on the percent-encoded text.
constexpr size_t kMaxGenerationChars = 256;
constexpr size_t kMaxHolderChars = 300;
constexpr size_t kMaxReasonChars = 1536;
constexpr int kMaxCtimeAttempts = 3;  // store.ts MAX_CTIME_ATTEMPTS

// What one TagStore writes with: fixed for its life.
struct TagWriter {
  std::string ns, key, holder_pct;
  int64_t lease_ms = 60000;
  bool ctime = true;
};

// Result codes of tagFinish, in the order src/tags/store.ts maps them.
enum FinishCode { kWritten = 0, kRemoved = 1, kStampChanged = 2, kNotOurs = 3, kNoLease = 4 };

Napi::Error coded_error(Napi::Env env, const char *code, const std::string &msg) {
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

// encodeURIComponent: unreserved ASCII stays, every other byte of the UTF-8 text becomes %XX (upper-case hex).
void pct_append(std::string &out, const std::string &s) {
  static const char hex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-_.!~*'()", c) != nullptr;
    if (keep && c != 0) {
      out.push_back((char)c);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
}

std::string pct(const std::string &s) {
  std::string out;
  out.reserve(s.size() + 8);
  pct_append(out, s);
  return out;
}

// codec.ts cutReason: a reason too long once encoded is cut by code points (never inside a UTF-8 sequence), 10 % at
// a time, and ends in "…"; a verdict must stay writable whatever its reason.
std::string cut_reason(const std::string &reason) {
  std::string enc = pct(reason);
  if (enc.size() <= kMaxReasonChars) return enc;
  std::vector<size_t> starts;  // byte offset of each code point
  for (size_t i = 0; i < reason.size(); i++)
    if (((unsigned char)reason[i] & 0xc0) != 0x80) starts.push_back(i);
  size_t n = starts.size();
  while (n > 0 && enc.size() > kMaxReasonChars) {
    n = (size_t)std::floor((double)n * 0.9);  // Math.floor(n * 0.9), the same IEEE product
    enc = pct(reason.substr(0, n < starts.size() ? starts[n] : reason.size()) + "\xe2\x80\xa6");
  }
  return enc;
}

// 16 CSPRNG bytes as 32 hex digits, unguessable and unique per lease (only the holder that wrote a lease may replace
// it with a result), from a pool refilled 4 KiB at a time: one call into OpenSSL's generator per 256 leases.
std::string next_token() {
  thread_local unsigned char pool[4096];
  thread_local size_t used = sizeof pool;
  if (used + 16 > sizeof pool) {
    if (RAND_bytes(pool, sizeof pool) != 1) return "";
    used = 0;
  }
  static const char digits[] = "0123456789abcdef";
  std::string t(32, '0');
  for (int i = 0; i < 16; i++) {
    t[2 * i] = digits[pool[used + i] >> 4];
    t[2 * i + 1] = digits[pool[used + i] & 15];
  }
  used += 16;
  return t;
}

// The stamp as codec.ts prints a Stamp: decimal, mtime signed (a file before 1970 prints a '-' the decoder refuses,
// as it refuses the TypeScript writer's).
bool stamp_now(int fd, FileStamp &s, struct stat &st, uint32_t &gen) {
  if (!read_stamp(fd, s, &st, &gen)) return false;
  s.mtime_ns = std::to_string((long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
  return true;
}

bool same_stamp(const FileStamp &a, const FileStamp &b) { return a.ino == b.ino && a.igen == b.igen && a.size == b.size && a.mtime_ns == b.mtime_ns; }

void stamp_fields(std::string &out, const FileStamp &s) {
  out.append(" ino=").append(s.ino).append(" igen=").append(s.igen).append(" size=").append(s.size).append(" mtime=").append(s.mtime_ns);
}

std::string signed_value(const std::string &body, const TagWriter &w, const std::string &name, const std::string &scanner) {
  std::string mac = tag_mac(w.key, name, scanner, body);
  return mac.empty() ? std::string() : body + " mac=" + mac;
}

TagWriter &writer_of(const Napi::CallbackInfo &info) {
  if (!info[0].IsExternal()) throw Napi::TypeError::New(info.Env(), "tag writer: expected the handle tagWriter() returned");
  return *info[0].As<Napi::External<TagWriter>>().Data();
}

std::string scanner_of(const Napi::CallbackInfo &info, size_t i) {
  std::string s = info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : std::string();
  if (!is_scanner_name(s)) throw coded_error(info.Env(), "TAG_BAD_SCANNER_NAME", "scanner: " + s.substr(0, 80) + " is not a scanner name ([a-z0-9][a-z0-9_-]*, at most 64 characters)");
  return s;
}

// tagWriter({ namespace, key: Buffer(32), holder, leaseMs, ctime }) -> handle
Napi::Value NewWriter(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "tagWriter: expected an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  auto w = std::make_unique<TagWriter>();
  w->ns = o.Get("namespace").ToString();
  if (w->ns != "trusted" && w->ns != "user") throw Napi::TypeError::New(env, "tagWriter: options.namespace must be 'trusted' or 'user'");
  Napi::Value k = o.Get("key");
  if (!k.IsBuffer() || k.As<Napi::Buffer<char>>().Length() != 32) throw Napi::TypeError::New(env, "tagWriter: options.key must be a Buffer of 32 bytes");
  w->key.assign(k.As<Napi::Buffer<char>>().Data(), 32);
  w->holder_pct = pct(o.Get("holder").ToString().Utf8Value());
  if (w->holder_pct.size() > kMaxHolderChars) throw coded_error(env, "TAG_FIELD_TOO_LONG", "holder is longer than " + std::to_string(kMaxHolderChars) + " characters");
  w->lease_ms = o.Get("leaseMs").ToNumber().Int64Value();
  w->ctime = o.Get("ctime").ToBoolean();
  return Napi::External<TagWriter>::New(env, w.release(), [](Napi::Env, TagWriter *p) { delete p; });
}

// Slots of tagBegin's out array: the stamp the lease is bound to, its ctime, and the lease's end.
enum { kIno, kIgen, kSize, kMtimeNs, kCtimeNs, kLeaseUntil, kBeginSlots };

// tagBegin(writer, fd, scanner, out: BigInt64Array(6)) -> token (leased) | { token, value } (a tag is there: EEXIST;
// `value` is the lease to take it over with, takeover.ts). Throws an errno error for any other failure.
Napi::Value Begin(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  TagWriter &w = writer_of(info);
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "tagBegin: expected an fd (number)");
  int fd = info[1].As<Napi::Number>().Int32Value();
  std::string scanner = scanner_of(info, 2);
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_bigint64_array || info[3].As<Napi::TypedArray>().ElementLength() < kBeginSlots)
    throw Napi::TypeError::New(env, "tagBegin: out must be a BigInt64Array of at least 6 elements");
  auto out = info[3].As<Napi::TypedArrayOf<int64_t>>();
  const std::string name = w.ns + ".scanned-by." + scanner;
  FileStamp stamp;
  struct stat st;
  uint32_t gen = 0;
  if (!stamp_now(fd, stamp, st, gen)) throw errno_error(env, errno, "fstat", "fd " + std::to_string(fd));
  const int64_t now = wall_clock_ms();
  const std::string token = next_token();
  if (token.empty()) throw Napi::Error::New(env, "tagBegin: RAND_bytes failed");
  std::string body = "v1 scanning token=" + token + " holder=" + w.holder_pct + " until=" + std::to_string(now + w.lease_ms);
  stamp_fields(body, stamp);
  body.append(" time=").append(std::to_string(now));
  const std::string value = signed_value(body, w, name, scanner);
  if (value.empty()) throw Napi::Error::New(env, "tagBegin: HMAC-SHA-256 failed");
  out[kIno] = (int64_t)st.st_ino;
  out[kIgen] = (int64_t)gen;
  out[kSize] = (int64_t)st.st_size;
  out[kMtimeNs] = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  out[kCtimeNs] = (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
  out[kLeaseUntil] = now + w.lease_ms;
  if (fsetxattr(fd, name.c_str(), value.data(), value.size(), XATTR_CREATE) == 0) return Napi::String::New(env, token);
  if (errno != EEXIST) throw errno_error(env, errno, "fsetxattr", name + " on fd " + std::to_string(fd));
  Napi::Object taken = Napi::Object::New(env);
  taken.Set("token", token);
  taken.Set("value", Napi::Buffer<char>::Copy(env, value.data(), value.size()));
  return taken;
}

// The lease on the file, if it is the one with this token and a MAC of ours: its stamp is what the result binds to.
bool our_lease(const TagWriter &w, const std::string &name, const std::string &scanner, const char *raw, size_t n, const std::string &token, FileStamp &bound) {
  DecodedTag d = decode_tag(raw, n);
  if (!d.ok || !d.scanning || d.token != token || !tag_mac_matches(w.key, name, scanner, d.body, d.mac)) return false;
  bound = d.stamp;
  return true;
}

// tagFinish(writer, fd, scanner, token, answer, reason?, generation, digest?, bound: BigInt64Array(4) | null) -> code
// `bound` is the stamp of the lease this store took with `token` (null if it has none): the result binds to it when
// the tag is already gone, so that the kernel (XATTR_REPLACE, ENODATA) says "removed meanwhile", not a guess.
Napi::Value Finish(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  TagWriter &w = writer_of(info);
  if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "tagFinish: expected an fd (number)");
  int fd = info[1].As<Napi::Number>().Int32Value();
  std::string scanner = scanner_of(info, 2);
  std::string token = info[3].ToString().Utf8Value();
  std::string answer = info[4].ToString().Utf8Value();
  if (answer != "deny" && answer != "ok" && answer != "allow") throw Napi::TypeError::New(env, "tagFinish: answer must be deny, ok or allow");
  std::string reason = info[5].IsString() ? info[5].As<Napi::String>().Utf8Value() : std::string();
  std::string gen_pct = pct(info[6].ToString().Utf8Value());
  if (gen_pct.size() > kMaxGenerationChars) throw coded_error(env, "TAG_FIELD_TOO_LONG", "generation is longer than " + std::to_string(kMaxGenerationChars) + " characters");
  std::string digest = info[7].IsString() ? info[7].As<Napi::String>().Utf8Value() : std::string();
  if (!digest.empty() && (digest.size() != 64 || digest.find_first_not_of("0123456789abcdef") != std::string::npos))
    throw coded_error(env, "TAG_BAD_OPTION", "digest must be a sha256 in lower-case hex");
  const std::string name = w.ns + ".scanned-by." + scanner;
  const std::string where = name + " on fd " + std::to_string(fd);

  thread_local char raw[4097];
  ssize_t n = fgetxattr(fd, name.c_str(), raw, sizeof raw);
  const bool present = n >= 0 || errno == ERANGE;
  if (n < 0 && errno != ENODATA && errno != ERANGE) throw errno_error(env, errno, "fgetxattr", where);
  FileStamp bound;
  if (present) {
    // Too long to be ours (ERANGE), or not our lease: taken over or replaced.
    if (n < 0 || !our_lease(w, name, scanner, raw, (size_t)n, token, bound)) return Napi::Number::New(env, kNotOurs);
  } else {
    if (!info[8].IsTypedArray()) return Napi::Number::New(env, kNoLease);
    if (info[8].As<Napi::TypedArray>().TypedArrayType() != napi_bigint64_array || info[8].As<Napi::TypedArray>().ElementLength() < 4)
      throw Napi::TypeError::New(env, "tagFinish: bound must be a BigInt64Array of 4 elements or null");
    auto b = info[8].As<Napi::TypedArrayOf<int64_t>>();
    bound = FileStamp{std::to_string((unsigned long long)b[0]), std::to_string((unsigned long long)(uint32_t)b[1]), std::to_string((long long)b[2]), std::to_string((long long)b[3])};
  }
  FileStamp now;
  struct stat st;
  uint32_t g = 0;
  if (!stamp_now(fd, now, st, g)) throw errno_error(env, errno, "fstat", "fd " + std::to_string(fd));
  if (!same_stamp(bound, now)) {
    // Our lease, bound to the old stamp, would block others until it expires: give it back.
    if (present && fremovexattr(fd, name.c_str()) != 0 && errno != ENODATA) throw errno_error(env, errno, "fremovexattr", where);
    return Napi::Number::New(env, kStampChanged);
  }
  std::string tail;  // everything after time=, the same in every attempt
  if (!digest.empty()) tail.append(" sha256=").append(digest);
  if (!reason.empty()) tail.append(" reason=").append(cut_reason(reason));
  for (int attempt = 1;; attempt++) {
    const int64_t time = wall_clock_ms();
    std::string body = "v1 " + answer + " gen=" + gen_pct;
    stamp_fields(body, bound);
    body.append(" time=").append(std::to_string(time)).append(tail);
    const std::string value = signed_value(body, w, name, scanner);
    if (value.empty()) throw Napi::Error::New(env, "tagFinish: HMAC-SHA-256 failed");
    if (fsetxattr(fd, name.c_str(), value.data(), value.size(), XATTR_REPLACE) != 0) {
      if (errno == ENODATA) return Napi::Number::New(env, kRemoved);  // a dirty transition removed the lease
      throw errno_error(env, errno, "fsetxattr", where);
    }
    if (!w.ctime || attempt >= kMaxCtimeAttempts) break;
    // ctime mode: the write must land within the slack of the time it carries (ctime.ts). The ctime the kernel
    // gave it is a clock reading taken inside the syscall, so a clock read now that is still within the slack
    // proves it without an fstat (docs/kernel.md); only a late return asks the inode.
    if (wall_clock_ms() < time + kCtimeSlackMs) break;  // strict: the ms clock floors
    if (!stamp_now(fd, now, st, g)) throw errno_error(env, errno, "fstat", "fd " + std::to_string(fd));
    if (!same_stamp(bound, now) || landed_in_time(now.ctime_ns, time)) break;  // a change: its event clears the tag
  }
  return Napi::Number::New(env, kWritten);
}

}  // namespace

void InitTagWrite(Napi::Env env, Napi::Object exports) {
  exports.Set("tagWriter", Napi::Function::New(env, NewWriter));
  exports.Set("tagBegin", Napi::Function::New(env, Begin));
  exports.Set("tagFinish", Napi::Function::New(env, Finish));
}

}  // namespace blessd
