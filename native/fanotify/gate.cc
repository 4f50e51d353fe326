#include <napi.h>
namespace blessd { void InitGate(Napi::Env, Napi::Object) {} }
