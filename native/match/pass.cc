// Overview — the signature engine's scan pass: one call per file reads it with pread into one reused buffer and
// feeds each chunk, in the same pass, to every wanted whole-file digest (native/digest) and to the Vectorscan
// stream (match/vectorscan), after comparing the anchored literals with the first chunk in place.
//
// Why native: for big files the JS chunk loop and Node's Hash object cost a quarter of the SHA-256 speed (Node's
// update() copies its argument's handle and state per call; the loop crosses into C++ three times per chunk); for a
// 4 KiB file the scan was seven crossings (readSync, begin, createHash, update, push, end, digest) and as many
// allocations. Here it is one crossing, no allocation, and the hashes run from the chunk while it is in cache.
//
// Owns: the read loop and its stopping rules, which are the engine's (actors/signature/engine.ts, scanInJs, is the
// reference and test/signature-pass.test.ts compares the two): a chunk never goes past the size the daemon stamped;
// a short read means the file shrank and ends the pass; a body hit ends it unless an allow-list may still name the
// file (then its digest needs every byte). Results go into JS-owned memory given at construction (the digests
// buffer and a Float64Array state), so a call returns one small number and makes no JS object.
// Must not: decide a verdict (the hash tables, .ign2 and the allow-lists stay in JS), keep a chunk past the next
// read, or swallow a read error (it is thrown with its errno code, as readSync would).
#include <napi.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "digest/digests.h"
#include "match/vectorscan.h"

namespace blessd {

namespace {

// state[] slots, shared with actors/signature/pass.ts.
enum State : int { kHitKind = 0, kHitIndex = 1, kPosition = 2, kStateSlots = 3 };
enum HitKind : int { kNoHit = 0, kAnchoredHit = 1, kStreamedHit = 2 };
// run() flags.
constexpr uint32_t kKeepReadingAfterHit = 1;  // an allow-list may name this file: every byte must be digested

struct Anchored {
  double at;
  uint32_t from, length;  // into anchoredBytes_
};

Napi::Error ErrnoError(Napi::Env env, int err, const char* what) {
  Napi::Error e = Napi::Error::New(env, std::string(strerror(err)) + ", " + what);
  e.Set("errno", Napi::Number::New(env, -err));
  const char* name = strerrorname_np(err);
  e.Set("code", Napi::String::New(env, name ? name : "EIO"));
  e.Set("syscall", Napi::String::New(env, "read"));
  return e;
}

class ScanPass : public Napi::ObjectWrap<ScanPass> {
 public:
  static Napi::Function Class(Napi::Env env) {
    return DefineClass(env, "ScanPass", {InstanceMethod<&ScanPass::Head>("head"), InstanceMethod<&ScanPass::Run>("run")});
  }

  // new ScanPass(buffer: Buffer, digests: Buffer /* 68 bytes */, state: Float64Array /* 3 */, matcher: BodyMatcher | null,
  //              anchoredAt: Float64Array, anchoredEnds: Uint32Array, anchoredBytes: Buffer)
  // Anchored literals are sorted by offset; literal i is anchoredBytes[anchoredEnds[i-1] .. anchoredEnds[i]).
  explicit ScanPass(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ScanPass>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 7 || !info[0].IsBuffer() || !info[1].IsBuffer() || !info[2].IsTypedArray() || !info[4].IsTypedArray() ||
        !info[5].IsTypedArray() || !info[6].IsBuffer()) {
      throw Napi::TypeError::New(env, "ScanPass(buffer, digests, state, matcher, anchoredAt, anchoredEnds, anchoredBytes)");
    }
    auto buffer = info[0].As<Napi::Buffer<uint8_t>>();
    auto digests = info[1].As<Napi::Buffer<uint8_t>>();
    auto state = info[2].As<Napi::Float64Array>();
    if (buffer.Length() == 0 || digests.Length() < kDigestBytesTotal || state.ElementLength() < kStateSlots) {
      throw Napi::RangeError::New(env, "ScanPass: empty buffer, or digests / state too small");
    }
    buffer_ = buffer.Data();
    capacity_ = buffer.Length();
    digests_ = digests.Data();
    state_ = state.Data();
    keep_.push_back(Napi::Persistent(info[0].As<Napi::Object>()));
    keep_.push_back(Napi::Persistent(info[1].As<Napi::Object>()));
    keep_.push_back(Napi::Persistent(info[2].As<Napi::Object>()));
    if (info[3].IsObject()) {
      matcher_ = BodyMatcher::Unwrap(info[3].As<Napi::Object>());
      keep_.push_back(Napi::Persistent(info[3].As<Napi::Object>()));
    }
    auto at = info[4].As<Napi::Float64Array>();
    auto ends = info[5].As<Napi::Uint32Array>();
    auto bytes = info[6].As<Napi::Buffer<uint8_t>>();
    if (at.ElementLength() != ends.ElementLength()) throw Napi::RangeError::New(env, "ScanPass: anchoredAt and anchoredEnds differ in length");
    anchoredBytes_.assign(bytes.Data(), bytes.Data() + bytes.Length());
    uint32_t from = 0;
    for (size_t i = 0; i < at.ElementLength(); i++) {
      if (ends[i] < from || ends[i] > bytes.Length() || ends[i] == from) throw Napi::RangeError::New(env, "ScanPass: bad anchoredEnds");
      anchored_.push_back(Anchored{at[i], from, ends[i] - from});
      from = ends[i];
    }
  }

 private:
  // Fill the buffer from `position` with up to `length` bytes; fewer only at the (new) end of the file.
  size_t Fill(Napi::Env env, int fd, double position, size_t length) {
    size_t filled = 0;
    while (filled < length) {
      ssize_t n = pread(fd, buffer_ + filled, length - filled, off_t(position) + off_t(filled));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw ErrnoError(env, errno, "pread of the file being scanned");
      if (n == 0) break;
      filled += size_t(n);
    }
    return filled;
  }

  // head(fd, size) -> bytes of the first chunk now in the buffer (for the engine's file-type and entry-point read,
  // when some signature needs them); run() then starts from these bytes instead of reading them again.
  Napi::Value Head(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = info[0].As<Napi::Number>().Int32Value();
    double size = info[1].As<Napi::Number>().DoubleValue();
    size_t length = size < double(capacity_) ? size_t(size) : capacity_;
    return Napi::Number::New(env, double(Fill(env, fd, 0, length)));
  }

  // First anchored literal that the first chunk holds in place, or -1.
  int32_t AnchoredHit(size_t filled) const {
    for (size_t i = 0; i < anchored_.size(); i++) {
      const Anchored& a = anchored_[i];
      if (a.at >= double(filled)) break;  // sorted by offset: the rest start later still
      if (a.at + a.length > double(filled)) continue;
      if (memcmp(buffer_ + size_t(a.at), anchoredBytes_.data() + a.from, a.length) == 0) return int32_t(i);
    }
    return -1;
  }

  // run(fd, size, digestMask, flags, entry, type, headFilled /* -1: not read yet */) -> hit kind (state has the rest)
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int fd = info[0].As<Napi::Number>().Int32Value();
    const double size = info[1].As<Napi::Number>().DoubleValue();
    const uint32_t mask = info[2].As<Napi::Number>().Uint32Value();
    const uint32_t flags = info[3].As<Napi::Number>().Uint32Value();
    const double entry = info[4].As<Napi::Number>().DoubleValue();
    const int32_t type = info[5].As<Napi::Number>().Int32Value();
    const double head = info[6].As<Napi::Number>().DoubleValue();

    if (!digests_set_.Begin(mask)) throw Napi::Error::New(env, "scan pass: OpenSSL cannot start a digest");
    int kind = kNoHit;
    int32_t index = -1;
    double position = 0;
    bool first = true, streaming = false;
    while (position < size) {
      const double left = size - position;
      const size_t length = left < double(capacity_) ? size_t(left) : capacity_;
      size_t filled;
      if (first && head >= 0) filled = size_t(head);
      else filled = Fill(env, fd, position, length);
      if (first) {
        first = false;
        index = AnchoredHit(filled);
        if (index >= 0) kind = kAnchoredHit;
        else if (matcher_) {
          if (!matcher_->BeginFile(size, entry, type)) throw Napi::Error::New(env, "vectorscan: cannot open a stream");
          streaming = true;
        }
      }
      digests_set_.Update(buffer_, filled);
      if (kind == kNoHit && streaming) {
        int error = 0;
        int32_t hit = matcher_->PushBytes(buffer_, filled, &error);
        if (hit == -2) {
          matcher_->EndFile();
          throw Napi::Error::New(env, "vectorscan: scan failed (" + std::to_string(error) + ")");
        }
        if (hit >= 0) kind = kStreamedHit, index = hit;
      }
      position += double(filled);
      if (kind != kNoHit && !(flags & kKeepReadingAfterHit)) break;
      if (filled < length) break;  // the file shrank since it was stat'ed
    }
    if (streaming) {
      int32_t hit = matcher_->EndFile();
      if (kind == kNoHit && hit >= 0) kind = kStreamedHit, index = hit;
    }
    if (!digests_set_.Finish(digests_)) throw Napi::Error::New(env, "scan pass: OpenSSL failed to finish a digest");
    state_[kHitKind] = kind;
    state_[kHitIndex] = index;
    state_[kPosition] = position;
    return Napi::Number::New(env, kind);
  }

  uint8_t* buffer_ = nullptr;
  size_t capacity_ = 0;
  uint8_t* digests_ = nullptr;
  double* state_ = nullptr;
  BodyMatcher* matcher_ = nullptr;
  std::vector<Napi::ObjectReference> keep_;
  std::vector<Anchored> anchored_;
  std::vector<uint8_t> anchoredBytes_;
  DigestSet digests_set_;
};

}  // namespace

Napi::Function ScanPassClass(Napi::Env env) { return ScanPass::Class(env); }

}  // namespace blessd
