// The JS face of native/tags: the policy object (checked at the boundary, errors name the option), and two
// functions for tests and tools — tagsJudge(fd, opts) (every tag judged, every field decoded, to compare with the
// TypeScript store) and tagsSettle(fd, policy) (what the reader thread would decide).
#include "tags/js.h"
#include <algorithm>
#include <ctime>
#include <sys/fanotify.h>
#include "tags/read.h"
#include "tags/settle.h"

namespace blessd {

namespace {
TagControl control_of(Napi::Env env, const std::string &s, const std::string &where) {
  if (s == "required") return TagControl::Required;
  if (s == "requisite") return TagControl::Requisite;
  if (s == "sufficient") return TagControl::Sufficient;
  if (s == "optional") return TagControl::Optional;
  if (s == "observe") return TagControl::Observe;
  throw Napi::TypeError::New(env, where + ".control must be required, requisite, sufficient, optional or observe");
}

TagAnswer answer_of(Napi::Env env, const std::string &s, const std::string &where) {
  if (s == "deny") return TagAnswer::Deny;
  if (s == "ok") return TagAnswer::Ok;
  if (s == "allow") return TagAnswer::Allow;
  throw Napi::TypeError::New(env, where + " must be deny, ok or allow");
}

const char *answer_name(TagAnswer a) { return a == TagAnswer::Deny ? "deny" : a == TagAnswer::Ok ? "ok" : "allow"; }

std::string ns_of(Napi::Env env, const Napi::Object &o) {
  std::string ns = o.Get("namespace").ToString();
  if (ns != "trusted" && ns != "user") throw Napi::TypeError::New(env, "tag policy: options.namespace must be 'trusted' or 'user'");
  return ns;
}

std::string key_of(Napi::Env env, const Napi::Object &o) {
  Napi::Value k = o.Get("key");
  if (!k.IsBuffer() || k.As<Napi::Buffer<char>>().Length() != 32) throw Napi::TypeError::New(env, "tag policy: options.key must be a Buffer of 32 bytes");
  auto b = k.As<Napi::Buffer<char>>();
  return std::string(b.Data(), b.Length());
}
}  // namespace

std::shared_ptr<const GateTagPolicy> tag_policy_from_js(Napi::Env env, const Napi::Value &v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "tag policy: expected an object or null");
  Napi::Object o = v.As<Napi::Object>();
  auto p = std::make_shared<GateTagPolicy>();
  p->ns = ns_of(env, o);
  p->key = key_of(env, o);
  p->ctime = o.Get("ctime").ToBoolean();
  if (o.Has("denyResponse")) p->deny_response = o.Get("denyResponse").As<Napi::Number>().Uint32Value();
  // What a deny tag answers: anything but a deny (FAN_ALLOW is 1, the value of EPERM) would serve the file.
  if ((p->deny_response & 0xff) != FAN_DENY)
    throw Napi::RangeError::New(env, "tag policy: options.denyResponse must be a deny (FAN_DENY or FAN_DENY_ERRNO(e)), not " + std::to_string(p->deny_response));
  Napi::Value rules = o.Get("rules");
  if (!rules.IsArray()) throw Napi::TypeError::New(env, "tag policy: options.rules must be an array");
  Napi::Array arr = rules.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    std::string where = "tag policy: options.rules[" + std::to_string(i) + "]";
    Napi::Value rv = arr.Get(i);
    if (!rv.IsObject()) throw Napi::TypeError::New(env, where + " must be an object");
    Napi::Object r = rv.As<Napi::Object>();
    TagRule rule;
    rule.name = r.Get("name").ToString();
    if (!is_scanner_name(rule.name)) throw Napi::TypeError::New(env, where + ".name is not a scanner name");
    rule.control = control_of(env, r.Get("control").ToString(), where);
    Napi::Value g = r.Get("generation");
    if (g.IsString()) {
      rule.has_generation = true;
      rule.generation = g.As<Napi::String>();
    }
    Napi::Value c = r.Get("constant");
    if (c.IsString()) rule.constant = answer_of(env, c.As<Napi::String>(), where + ".constant");
    p->rules.push_back(std::move(rule));
  }
  return p;
}

// tagsJudge(fd, { namespace, key, generations }) -> every tag of the namespace, judged, with its decoded fields.
static Napi::Value TagsJudge(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Object o = info[1].As<Napi::Object>();
  std::string ns = ns_of(env, o), key = key_of(env, o);
  Napi::Object gens = o.Get("generations").IsObject() ? o.Get("generations").As<Napi::Object>() : Napi::Object::New(env);
  std::vector<RawTag> tags;
  FileStamp stamp;
  if (!read_tags(fd, ns, tags)) throw Napi::Error::New(env, "tagsJudge: cannot list the tags of fd " + std::to_string(fd));
  if (!read_stamp(fd, stamp)) throw Napi::Error::New(env, "tagsJudge: cannot fstat fd " + std::to_string(fd));
  int64_t now = wall_clock_ms();
  const bool ctime = o.Get("ctime").ToBoolean();
  std::vector<DecodedTag> decoded;
  std::vector<TagJudgement> judged;
  int64_t newest = -1;
  for (const RawTag &t : tags) {
    decoded.push_back(t.too_long ? DecodedTag{} : decode_tag(t.value.data(), t.value.size()));
    std::string gen;
    bool has_gen = gens.Has(t.scanner) && gens.Get(t.scanner).IsString();
    if (has_gen) gen = gens.Get(t.scanner).As<Napi::String>();
    judged.push_back(judge_tag(t.name, t.scanner, decoded.back(), key, stamp, has_gen ? &gen : nullptr, now));
    if (judged.back() != TagJudgement::BadMac && judged.back() != TagJudgement::Unparseable) newest = std::max<int64_t>(newest, std::stoll(decoded.back().time));
  }
  const bool touched = ctime && newest >= 0 && !landed_in_time(stamp.ctime_ns, newest);
  Napi::Array out = Napi::Array::New(env, tags.size());
  for (size_t i = 0; i < tags.size(); i++) {
    const RawTag &t = tags[i];
    const DecodedTag &d = decoded[i];
    TagJudgement j = judged[i];
    if (touched && (j == TagJudgement::Valid || j == TagJudgement::StaleGeneration)) j = TagJudgement::StaleStamp;
    Napi::Object r = Napi::Object::New(env);
    r.Set("name", t.name);
    r.Set("scanner", t.scanner);
    r.Set("judgement", judgement_name(j));
    if (d.ok && is_scanner_name(t.scanner)) {  // as judge.ts: a value under a name not ours is not even decoded
      Napi::Object v = Napi::Object::New(env);
      v.Set("kind", d.scanning ? "scanning" : "result");
      if (d.scanning) {
        v.Set("token", d.token);
        v.Set("holder", d.holder);
        v.Set("leaseUntil", d.until);
      } else {
        v.Set("answer", answer_name(d.answer));
        v.Set("generation", d.generation);
        if (d.has_reason) v.Set("reason", d.reason);
        if (d.has_digest) v.Set("digest", d.digest);
      }
      v.Set("ino", d.stamp.ino);
      v.Set("igen", d.stamp.igen);
      v.Set("size", d.stamp.size);
      v.Set("mtimeNs", d.stamp.mtime_ns);
      v.Set("time", d.time);
      r.Set("value", v);
    }
    out.Set(i, r);
  }
  return out;
}

// tagsSettle(fd, policy) -> 'allow' | 'deny' | 'unknown': what the reader thread decides for this file.
static Napi::Value TagsSettle(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto policy = tag_policy_from_js(env, info[1]);
  if (!policy) return Napi::String::New(env, "unknown");
  Settlement s = settle_by_tags(fd, *policy, wall_clock_ms());
  return Napi::String::New(env, s == Settlement::Allowed ? "allow" : s == Settlement::Denied ? "deny" : "unknown");
}

// tagMac(key: Buffer(32), xattrName, scanner, body) -> hex: the MAC of src/tags/mac.ts, from the one native
// definition the reader thread verifies with (verify.cc tag_mac). The tag store signs and checks with it too: node's
// createHmac builds an object and sets the key up per call, several times per scanned file (docs/bench.md).
static Napi::Value TagMac(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer() || info[0].As<Napi::Buffer<char>>().Length() != 32) throw Napi::TypeError::New(env, "tagMac: key must be a Buffer of 32 bytes");
  if (!info[1].IsString() || !info[2].IsString() || !info[3].IsString()) throw Napi::TypeError::New(env, "tagMac: xattrName, scanner and body must be strings");
  auto k = info[0].As<Napi::Buffer<char>>();
  std::string mac = tag_mac(std::string(k.Data(), k.Length()), info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::String>().Utf8Value(), info[3].As<Napi::String>().Utf8Value());
  if (mac.empty()) throw Napi::Error::New(env, "tagMac: HMAC-SHA-256 failed");
  return Napi::String::New(env, mac);
}

void InitTags(Napi::Env env, Napi::Object exports) {
  exports.Set("tagMac", Napi::Function::New(env, TagMac));
  exports.Set("tagsJudge", Napi::Function::New(env, TagsJudge));
  exports.Set("tagsSettle", Napi::Function::New(env, TagsSettle));
}

}  // namespace blessd
