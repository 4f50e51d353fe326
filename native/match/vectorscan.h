// The body-pattern matcher of the `signature` actor (Vectorscan streaming mode); see vectorscan.cc.
#pragma once
#include <hs/hs.h>
#include <napi.h>

#include <cstdint>
#include <vector>

namespace blessd {

class BodyMatcher : public Napi::ObjectWrap<BodyMatcher> {
 public:
  static Napi::Function Class(Napi::Env env);
  explicit BodyMatcher(const Napi::CallbackInfo& info);
  ~BodyMatcher() override;

  // The C++ face, for the scan pass (native/match/pass.cc): same meaning as the JS methods, no JS values.
  // Begin returns false when Vectorscan cannot open a stream; Push / End return the hit index or -1, or -2 on a
  // scan error (Vectorscan's code in *error).
  bool BeginFile(double size, double entry, int32_t type);
  int32_t PushBytes(const uint8_t* data, size_t length, int* error);
  int32_t EndFile();

 private:
  struct Check {
    int32_t kind;
    int32_t target;   // ClamAV target type; 0 = any file
    double lo, hi;    // allowed start offsets (relative to 0, the end, or the entry point)
    double fixedLen;  // match length when fixed (start = end - length), -1: the pattern reports its start (SOM)
  };

  Napi::Value Begin(const Napi::CallbackInfo& info);
  Napi::Value Push(const Napi::CallbackInfo& info);
  Napi::Value End(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  static int OnMatch(unsigned id, unsigned long long from, unsigned long long to, unsigned, void* ctx);

  hs_database_t* db_ = nullptr;
  hs_scratch_t* scratch_ = nullptr;
  hs_stream_t* stream_ = nullptr;  // kept from file to file (hs_reset_stream), freed with the matcher
  bool open_ = false;              // a file is being scanned: begun, not yet ended
  bool dirty_ = false;             // the stream has seen bytes since its last reset
  std::vector<Check> checks_;
  double size_ = 0, entry_ = -1;
  int32_t type_ = 0;
  int32_t hit_ = -1;
};

}  // namespace blessd
