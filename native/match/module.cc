// The blessd_match addon: the signature engine's native half (Vectorscan matcher, scan pass), apart from the
// daemon's addon so that a machine without libvectorscan can still run blessd without the signature actor.
#include <hs/hs.h>
#include <napi.h>

#include "match/vectorscan.h"

namespace blessd {
Napi::Function ScanPassClass(Napi::Env env);
}

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("BodyMatcher", blessd::BodyMatcher::Class(env));
  exports.Set("ScanPass", blessd::ScanPassClass(env));
  exports.Set("FLAG_DOTALL", Napi::Number::New(env, HS_FLAG_DOTALL));
  exports.Set("FLAG_SINGLEMATCH", Napi::Number::New(env, HS_FLAG_SINGLEMATCH));
  exports.Set("FLAG_SOM_LEFTMOST", Napi::Number::New(env, HS_FLAG_SOM_LEFTMOST));
  exports.Set("FLAG_ALLOWEMPTY", Napi::Number::New(env, HS_FLAG_ALLOWEMPTY));
  return exports;
}
}  // namespace

NODE_API_MODULE(blessd_match, Init)
