// Decoding, MAC and judging of one tag value, and the stack walk; see verify.h. Pure functions: no syscalls.
// Every rule here mirrors a line of src/tags/codec.ts / judge.ts / mac.ts or src/policy/stack.ts; where they differ
// the TypeScript is right and this is a bug (test/tags-native.test.ts compares the two on real tags).
#include "tags/verify.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <cstring>

namespace blessd {

namespace {
constexpr size_t kMaxValueBytes = 4096;
constexpr char kDomain[] = "blessd-tag-mac-v1";

struct Unparseable {
  std::string problem;
};
[[noreturn]] void fail(const std::string &p) { throw Unparseable{p}; }

bool is_hex_lower(const std::string &s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// /^(0|[1-9][0-9]*)$/ and at most max_digits (codec.ts uint()).
const std::string &uint_field(const char *name, const std::string &s, size_t max_digits) {
  bool ok = !s.empty() && s.size() <= max_digits && (s == "0" || (s[0] >= '1' && s[0] <= '9'));
  for (char c : s) ok = ok && c >= '0' && c <= '9';
  if (!ok) fail(std::string(name) + "=" + s.substr(0, 24) + " is not an unsigned integer");
  return s;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// decodeURIComponent: %XX sequences must form well-formed UTF-8 (no overlong forms, no surrogates, ≤ U+10FFFF).
bool valid_utf8(const std::string &s) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned c = p[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return false;
    if (cp >= 0xd800 && cp <= 0xdfff) return false;
    i += len;
  }
  return true;
}

std::string text_field(const char *name, const std::string &s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) fail(std::string(name) + " is not valid percent-encoding");
    int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
    if (a < 0 || b < 0) fail(std::string(name) + " is not valid percent-encoding");
    out.push_back((char)(a * 16 + b));
    i += 2;
  }
  if (!valid_utf8(out)) fail(std::string(name) + " is not valid percent-encoding");
  return out;
}

struct Field {
  const char *name;
  bool optional;
};
const Field kResultFields[] = {{"gen", false}, {"ino", false}, {"igen", false}, {"size", false}, {"mtime", false}, {"time", false}, {"sha256", true}, {"reason", true}};
const Field kScanningFields[] = {{"token", false}, {"holder", false}, {"until", false}, {"ino", false}, {"igen", false}, {"size", false}, {"mtime", false}, {"time", false}};

// fieldsInOrder of codec.ts: fields in the order given; optional ones may be missing; nothing unknown, nothing twice.
template <size_t N>
void fields_in_order(const std::vector<std::string> &tokens, size_t from, const Field (&order)[N], std::string (&out)[N], bool (&seen)[N]) {
  size_t at = 0;
  for (size_t t = from; t < tokens.size(); t++) {
    const std::string &tok = tokens[t];
    size_t eq = tok.find('=');
    if (eq == std::string::npos || eq == 0) fail("field " + tok.substr(0, 24) + " is not name=value");
    std::string name = tok.substr(0, eq);
    size_t idx = N;
    for (size_t k = at; k < N; k++)
      if (name == order[k].name) {
        idx = k;
        break;
      }
    if (idx == N) fail("unknown or out-of-order field " + name.substr(0, 24));
    for (size_t k = at; k < idx; k++)
      if (!order[k].optional) fail(std::string("field ") + order[k].name + " missing");
    out[idx] = tok.substr(eq + 1);
    seen[idx] = true;
    at = idx + 1;
  }
  for (size_t k = at; k < N; k++)
    if (!order[k].optional) fail(std::string("field ") + order[k].name + " missing");
}

void decode_or_throw(const char *raw, size_t n, DecodedTag &d) {
  if (n == 0) fail("empty value");
  if (n > kMaxValueBytes) fail("value too long");
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (unsigned char)raw[i];
    if (b != 0x20 && (b < 0x21 || b > 0x7e)) fail("byte outside printable ASCII");
  }
  std::string text(raw, n);
  size_t mac_at = text.rfind(" mac=");
  std::string head = text.substr(0, text.find(' '));
  if (head != "v1") fail("no version prefix v1");
  if (mac_at == std::string::npos) fail("no mac field");
  d.body = text.substr(0, mac_at);
  d.mac = text.substr(mac_at + 5);
  if (d.mac.size() != 64 || !is_hex_lower(d.mac)) fail("mac is not 64 hex digits");
  std::vector<std::string> tokens;
  for (size_t start = 0;;) {
    size_t sp = d.body.find(' ', start);
    tokens.push_back(d.body.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
    if (sp == std::string::npos) break;
    start = sp + 1;
  }
  const std::string kind = tokens.size() > 1 ? tokens[1] : "";
  if (kind == "scanning") {
    std::string f[8];
    bool seen[8] = {};
    fields_in_order(tokens, 2, kScanningFields, f, seen);
    if (f[0].size() < 8 || f[0].size() > 64 || !is_hex_lower(f[0])) fail("token is not hex");
    d.scanning = true;
    d.token = f[0];
    d.holder = text_field("holder", f[1]);
    d.until = uint_field("until", f[2], 15);
    d.stamp = FileStamp{uint_field("ino", f[3], 20), uint_field("igen", f[4], 10), uint_field("size", f[5], 20), uint_field("mtime", f[6], 22)};
    d.time = uint_field("time", f[7], 15);
    return;
  }
  if (kind == "deny" || kind == "ok" || kind == "allow") {
    std::string f[8];
    bool seen[8] = {};
    fields_in_order(tokens, 2, kResultFields, f, seen);
    d.answer = kind == "deny" ? TagAnswer::Deny : kind == "ok" ? TagAnswer::Ok : TagAnswer::Allow;
    d.generation = text_field("gen", f[0]);
    d.stamp = FileStamp{uint_field("ino", f[1], 20), uint_field("igen", f[2], 10), uint_field("size", f[3], 20), uint_field("mtime", f[4], 22)};
    d.time = uint_field("time", f[5], 15);
    if (seen[6]) {
      if (f[6].size() != 64 || !is_hex_lower(f[6])) fail("sha256 is not 64 hex digits");
      d.has_digest = true;
      d.digest = f[6];
    }
    if (seen[7]) {
      d.has_reason = true;
      d.reason = text_field("reason", f[7]);
    }
    return;
  }
  fail("unknown kind " + kind.substr(0, 24));
}

// The decimal digits of a stamp field compare as numbers do: both sides are canonical (no leading zeros).
bool same_stamp(const FileStamp &a, const FileStamp &b) { return a.ino == b.ino && a.igen == b.igen && a.size == b.size && a.mtime_ns == b.mtime_ns; }

bool decimal_less(const std::string &a, const std::string &b) { return a.size() != b.size() ? a.size() < b.size() : a < b; }

// The walk of src/policy/stack.ts as a tiny automaton: bits FAIL/SUCC, ALLOW and DENY final.
constexpr int kFail = 1, kSucc = 2, kAllow = 4, kDeny = 5;
int step(int state, TagControl c, TagAnswer a) {
  if (state >= kAllow) return state;
  switch (c) {
    case TagControl::Observe: return state;
    case TagControl::Required: return a == TagAnswer::Deny ? state | kFail : a == TagAnswer::Allow ? state | kSucc : state;
    case TagControl::Requisite: return a == TagAnswer::Deny ? kDeny : a == TagAnswer::Allow ? state | kSucc : state;
    case TagControl::Sufficient: return a == TagAnswer::Allow && !(state & kFail) ? kAllow : state;
    case TagControl::Optional: return a == TagAnswer::Allow ? state | kSucc : state;
  }
  return state;
}
TagAnswer finish(int state) {
  if (state == kAllow) return TagAnswer::Allow;
  if (state == kDeny || (state & kFail)) return TagAnswer::Deny;
  return (state & kSucc) ? TagAnswer::Allow : TagAnswer::Deny;
}
}  // namespace

const char *judgement_name(TagJudgement j) {
  static const char *names[] = {"valid", "stale-stamp", "stale-generation", "bad-mac", "scanning-live", "scanning-expired", "unparseable"};
  return names[(int)j];
}

bool is_scanner_name(const std::string &s) {
  if (s.empty() || s.size() > 64) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(s[0])) return false;
  for (char c : s)
    if (!alnum(c) && c != '_' && c != '-') return false;
  return true;
}

DecodedTag decode_tag(const char *raw, size_t n) {
  DecodedTag d;
  try {
    decode_or_throw(raw, n, d);
    d.ok = true;
  } catch (const Unparseable &u) {
    d = DecodedTag{};
    d.problem = u.problem;
  }
  return d;
}

namespace {
// HMAC-SHA-256 (RFC 2104) from a keyed state kept per thread: the inner and outer pad blocks hashed once per key,
// each MAC then two copies of those states and two short updates. Why by hand: OpenSSL 3's one-shot HMAC() fetches
// the MAC and the digest implementation from the provider store at every call (hash-table lookups and locks that
// showed in the pool threads' perf profile, several MACs per scanned file); the arithmetic is OpenSSL's digest.
// test/tags-mac.test.ts holds the result to node's createHmac.
struct KeyedMac {
  std::string key;
  EVP_MD_CTX *inner = nullptr, *outer = nullptr, *work = nullptr;
  ~KeyedMac() {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    EVP_MD_CTX_free(work);
  }
};

const EVP_MD *sha256() {
  static const EVP_MD *md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // fetched once, kept for the process
  return md;
}

KeyedMac *keyed(const std::string &key) {
  thread_local KeyedMac k;  // the last key this thread signed with (one per store and gate in practice)
  if (k.work != nullptr && k.key == key) return &k;
  const EVP_MD *md = sha256();
  if (md == nullptr) return nullptr;
  if (k.inner == nullptr) k.inner = EVP_MD_CTX_new();
  if (k.outer == nullptr) k.outer = EVP_MD_CTX_new();
  if (k.work == nullptr) k.work = EVP_MD_CTX_new();
  if (k.inner == nullptr || k.outer == nullptr || k.work == nullptr) return nullptr;
  unsigned char block[64] = {};
  if (key.size() > sizeof block) {
    unsigned int n = 0;
    if (EVP_Digest(key.data(), key.size(), block, &n, md, nullptr) != 1) return nullptr;
  } else {
    memcpy(block, key.data(), key.size());
  }
  unsigned char ipad[64], opad[64];
  for (int i = 0; i < 64; i++) {
    ipad[i] = block[i] ^ 0x36;
    opad[i] = block[i] ^ 0x5c;
  }
  if (EVP_DigestInit_ex(k.inner, md, nullptr) != 1 || EVP_DigestUpdate(k.inner, ipad, 64) != 1 || EVP_DigestInit_ex(k.outer, md, nullptr) != 1 ||
      EVP_DigestUpdate(k.outer, opad, 64) != 1) {
    k.key.clear();
    return nullptr;
  }
  k.key = key;
  return &k;
}
}  // namespace

std::string tag_mac(const std::string &key, const std::string &xattr_name, const std::string &scanner, const std::string &body) {
  // The message: domain \0 xattr name \0 scanner \0 body (mac.ts), fed piece by piece.
  KeyedMac *k = keyed(key);
  if (k == nullptr) return "";
  static const unsigned char zero = 0;
  unsigned char inner[EVP_MAX_MD_SIZE], out[EVP_MAX_MD_SIZE];
  unsigned int ilen = 0, len = 0;
  if (EVP_MD_CTX_copy_ex(k->work, k->inner) != 1 || EVP_DigestUpdate(k->work, kDomain, sizeof kDomain - 1) != 1 || EVP_DigestUpdate(k->work, &zero, 1) != 1 ||
      EVP_DigestUpdate(k->work, xattr_name.data(), xattr_name.size()) != 1 || EVP_DigestUpdate(k->work, &zero, 1) != 1 ||
      EVP_DigestUpdate(k->work, scanner.data(), scanner.size()) != 1 || EVP_DigestUpdate(k->work, &zero, 1) != 1 ||
      EVP_DigestUpdate(k->work, body.data(), body.size()) != 1 || EVP_DigestFinal_ex(k->work, inner, &ilen) != 1)
    return "";
  if (EVP_MD_CTX_copy_ex(k->work, k->outer) != 1 || EVP_DigestUpdate(k->work, inner, ilen) != 1 || EVP_DigestFinal_ex(k->work, out, &len) != 1) return "";
  static const char digits[] = "0123456789abcdef";
  std::string hex(len * 2, '0');
  for (unsigned i = 0; i < len; i++) {
    hex[2 * i] = digits[out[i] >> 4];
    hex[2 * i + 1] = digits[out[i] & 15];
  }
  return hex;
}

bool tag_mac_matches(const std::string &key, const std::string &xattr_name, const std::string &scanner, const std::string &body, const std::string &mac_hex) {
  std::string want = tag_mac(key, xattr_name, scanner, body);
  return want.size() == 64 && mac_hex.size() == 64 && CRYPTO_memcmp(want.data(), mac_hex.data(), 64) == 0;
}

TagJudgement judge_tag(const std::string &xattr_name, const std::string &scanner, const DecodedTag &d, const std::string &key, const FileStamp &file, const std::string *generation, int64_t now_ms) {
  if (!is_scanner_name(scanner) || !d.ok) return TagJudgement::Unparseable;
  if (!tag_mac_matches(key, xattr_name, scanner, d.body, d.mac)) return TagJudgement::BadMac;
  if (d.scanning) return decimal_less(std::to_string(now_ms), d.until) ? TagJudgement::ScanningLive : TagJudgement::ScanningExpired;
  if (!same_stamp(d.stamp, file)) return TagJudgement::StaleStamp;
  if (generation != nullptr && *generation != d.generation) return TagJudgement::StaleGeneration;
  return TagJudgement::Valid;
}

TagAnswer settled_verdict(const std::vector<TagRule> &rules, const std::vector<TagAnswer> &answers) {
  static const TagAnswer kinds[] = {TagAnswer::Deny, TagAnswer::Ok, TagAnswer::Allow};
  unsigned states = 1u << 0;  // a set of automaton states, one bit each (0..5)
  for (size_t i = 0; i < rules.size(); i++) {
    unsigned next = 0;
    for (int s = 0; s < 6; s++) {
      if (!(states & (1u << s))) continue;
      if (answers[i] != TagAnswer::None) next |= 1u << step(s, rules[i].control, answers[i]);
      else
        for (TagAnswer a : kinds) next |= 1u << step(s, rules[i].control, a);
    }
    states = next;
  }
  bool allow = false, deny = false;
  for (int s = 0; s < 6; s++) {
    if (!(states & (1u << s))) continue;
    (finish(s) == TagAnswer::Allow ? allow : deny) = true;
  }
  if (allow && deny) return TagAnswer::None;
  return allow ? TagAnswer::Allow : TagAnswer::Deny;
}

}  // namespace blessd
