// The addon's single entry point: each kernel API lives in its own file and registers its functions here.
#include <napi.h>

namespace blessd {
void InitGate(Napi::Env env, Napi::Object exports);
void InitXattr(Napi::Env env, Napi::Object exports);
void InitIdentity(Napi::Env env, Napi::Object exports);
void InitScmRights(Napi::Env env, Napi::Object exports);
void InitPeerCred(Napi::Env env, Napi::Object exports);
void InitDatagram(Napi::Env env, Napi::Object exports);
void InitTags(Napi::Env env, Napi::Object exports);
void InitPidfd(Napi::Env env, Napi::Object exports);
void InitTagStamp(Napi::Env env, Napi::Object exports);
void InitTagWrite(Napi::Env env, Napi::Object exports);
void InitFdPath(Napi::Env env, Napi::Object exports);
void InitThreadName(Napi::Env env, Napi::Object exports);
}  // namespace blessd

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  blessd::InitGate(env, exports);
  blessd::InitXattr(env, exports);
  blessd::InitIdentity(env, exports);
  blessd::InitScmRights(env, exports);
  blessd::InitPeerCred(env, exports);
  blessd::InitDatagram(env, exports);
  blessd::InitTags(env, exports);
  blessd::InitPidfd(env, exports);
  blessd::InitTagStamp(env, exports);
  blessd::InitTagWrite(env, exports);
  blessd::InitFdPath(env, exports);
  blessd::InitThreadName(env, exports);
  return exports;
}

NODE_API_MODULE(blessd_native, Init)
