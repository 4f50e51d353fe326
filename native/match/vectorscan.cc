// Overview — the body-pattern matcher of the `signature` actor: Vectorscan (Hyperscan's portable fork, Debian's
// libvectorscan) in streaming mode, behind one small class.
//
// Owns: one compiled stream database, one scratch and one stream, reset (hs_reset_stream) from file to file rather
// than opened and closed: with 10,000 patterns a fresh stream is a large malloc and its page faults, which were a
// quarter of a 4 KiB scan (perf, docs/signatures.md). An instance lives in one worker thread and scans one file at
// a time (begin, push per chunk, end), so nothing here is shared or locked.
// Decides in the match callback, without crossing into JS per match: each pattern carries its ClamAV offset check
// (anywhere; start in [lo, hi]; from end of file; from the entry point) and its target type, checked against the
// file's size, entry point and type given at begin(). The first match that passes its check halts the scan.
// Must not: keep a JS value across calls, or scan after a halt (the stream is spent; end() just resets it).
#include "match/vectorscan.h"

#include <string>

namespace blessd {

namespace {
enum CheckKind : int32_t { kAnywhere = 0, kAbsolute = 1, kFromEnd = 2, kFromEntry = 3 };
}  // namespace

Napi::Function BodyMatcher::Class(Napi::Env env) {
  return DefineClass(env, "BodyMatcher",
                     {InstanceMethod<&BodyMatcher::Begin>("begin"), InstanceMethod<&BodyMatcher::Push>("push"),
                      InstanceMethod<&BodyMatcher::End>("end"), InstanceMethod<&BodyMatcher::Size>("size")});
}

// new BodyMatcher(expressions: string[], flags: Uint32Array, checks: Float64Array /* 5 per pattern */)
BodyMatcher::BodyMatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BodyMatcher>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsArray() || !info[1].IsTypedArray() || !info[2].IsTypedArray()) {
    throw Napi::TypeError::New(env, "BodyMatcher(expressions, flags, checks)");
  }
  auto list = info[0].As<Napi::Array>();
  auto flags = info[1].As<Napi::Uint32Array>();
  auto checks = info[2].As<Napi::Float64Array>();
  const uint32_t n = list.Length();
  if (flags.ElementLength() != n || checks.ElementLength() != size_t(n) * 5) {
    throw Napi::RangeError::New(env, "BodyMatcher: flags and checks must match the expressions");
  }
  std::vector<std::string> exprs(n);
  std::vector<const char*> ptrs(n);
  std::vector<unsigned> fl(n), ids(n);
  bool som = false;
  checks_.resize(n);
  for (uint32_t i = 0; i < n; i++) {
    exprs[i] = list.Get(i).As<Napi::String>().Utf8Value();
    ptrs[i] = exprs[i].c_str();
    fl[i] = flags[i];
    ids[i] = i;
    if (fl[i] & HS_FLAG_SOM_LEFTMOST) som = true;
    const double* c = checks.Data() + size_t(i) * 5;
    checks_[i] = Check{int32_t(c[0]), int32_t(c[1]), c[2], c[3], c[4]};
  }
  hs_compile_error_t* err = nullptr;
  unsigned mode = HS_MODE_STREAM | (som ? HS_MODE_SOM_HORIZON_LARGE : 0);
  if (hs_compile_multi(ptrs.data(), fl.data(), ids.data(), n, mode, nullptr, &db_, &err) != HS_SUCCESS) {
    std::string msg = err && err->message ? err->message : "compile failed";
    int at = err ? err->expression : -1;
    hs_free_compile_error(err);
    throw Napi::Error::New(env, "vectorscan: expression " + std::to_string(at) + ": " + msg);
  }
  if (hs_alloc_scratch(db_, &scratch_) != HS_SUCCESS) throw Napi::Error::New(env, "vectorscan: cannot allocate scratch");
}

BodyMatcher::~BodyMatcher() {
  if (stream_) hs_close_stream(stream_, nullptr, nullptr, nullptr);
  if (scratch_) hs_free_scratch(scratch_);
  if (db_) hs_free_database(db_);
}

bool BodyMatcher::BeginFile(double size, double entry, int32_t type) {
  size_ = size;
  entry_ = entry;
  type_ = type;
  hit_ = -1;
  open_ = false;
  if (stream_) {
    // A file abandoned mid-way (a read error) left state behind: drop it, no matches reported.
    if (dirty_ && hs_reset_stream(stream_, 0, nullptr, nullptr, nullptr) != HS_SUCCESS) return false;
  } else if (hs_open_stream(db_, 0, &stream_) != HS_SUCCESS) {
    stream_ = nullptr;
    return false;
  }
  open_ = dirty_ = true;
  return true;
}

int32_t BodyMatcher::PushBytes(const uint8_t* data, size_t length, int* error) {
  if (hit_ >= 0 || !open_) return hit_;
  hs_error_t r = hs_scan_stream(stream_, reinterpret_cast<const char*>(data), unsigned(length), 0, scratch_, &BodyMatcher::OnMatch, this);
  if (r != HS_SUCCESS && r != HS_SCAN_TERMINATED) {
    *error = r;
    return -2;
  }
  return hit_;
}

int32_t BodyMatcher::EndFile() {
  if (open_) {
    // Reports the matches that need the end of data (unless one already decided) and leaves the stream fresh for
    // the next file. Should the reset fail, the next begin opens a new stream.
    if (hs_reset_stream(stream_, 0, scratch_, hit_ >= 0 ? nullptr : &BodyMatcher::OnMatch, this) == HS_SUCCESS) dirty_ = false;
    else {
      hs_close_stream(stream_, nullptr, nullptr, nullptr);
      stream_ = nullptr;
    }
    open_ = false;
  }
  return hit_;
}

// begin(size, entryPoint /* -1: none */, fileType)
Napi::Value BodyMatcher::Begin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!BeginFile(info[0].As<Napi::Number>().DoubleValue(), info[1].As<Napi::Number>().DoubleValue(), info[2].As<Napi::Number>().Int32Value())) {
    throw Napi::Error::New(env, "vectorscan: cannot open a stream");
  }
  return env.Undefined();
}

// push(chunk) -> index of the first pattern that matched and passed its check, or -1
Napi::Value BodyMatcher::Push(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto buf = info[0].As<Napi::Uint8Array>();
  int error = 0;
  int32_t hit = PushBytes(buf.Data(), buf.ByteLength(), &error);
  if (hit == -2) throw Napi::Error::New(env, "vectorscan: scan failed (" + std::to_string(error) + ")");
  return Napi::Number::New(env, hit);
}

// end() -> like push, for matches that need the end of data; closes the stream
Napi::Value BodyMatcher::End(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), EndFile()); }

Napi::Value BodyMatcher::Size(const Napi::CallbackInfo& info) {
  size_t bytes = 0;
  hs_database_size(db_, &bytes);
  return Napi::Number::New(info.Env(), double(bytes));
}

int BodyMatcher::OnMatch(unsigned id, unsigned long long from, unsigned long long to, unsigned, void* ctx) {
  auto* self = static_cast<BodyMatcher*>(ctx);
  const Check& c = self->checks_[id];
  if (c.target != 0 && c.target != self->type_) return 0;
  if (c.kind != kAnywhere) {
    double start = c.fixedLen >= 0 ? double(to) - c.fixedLen : double(from);
    double base = c.kind == kAbsolute ? 0 : c.kind == kFromEnd ? self->size_ : self->entry_;
    if (c.kind == kFromEntry && self->entry_ < 0) return 0;
    if (start < base + c.lo || start > base + c.hi) return 0;
  }
  self->hit_ = int32_t(id);
  return 1;  // halt: one match decides
}

}  // namespace blessd
