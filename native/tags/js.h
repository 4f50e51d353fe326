// The tag policy as JS hands it over: { namespace, key, denyResponse, rules: [{ name, control, generation?, constant? }] }.
#pragma once
#include <napi.h>
#include <memory>
#include "tags/verify.h"

namespace blessd {

struct GateTagPolicy : TagPolicy {
  uint32_t deny_response = 2;  // FAN_DENY
};

std::shared_ptr<const GateTagPolicy> tag_policy_from_js(Napi::Env env, const Napi::Value &v);

}  // namespace blessd
