// Overview — verdict tags judged on the native side, so that the reader thread can answer a file whose valid tags
// already settle the stack's verdict (a restart, a reload, an evicted ignore mark) without waking JavaScript.
//
// The TypeScript codec (src/tags/codec.ts, judge.ts, mac.ts) is the definition; this is a second reader of the
// same text, held to it by test/tags-native.test.ts. Owns: decoding one value, its HMAC, judging it against the
// file's stamp and the current generation, and the stack walk over the answers found (src/policy/stack.ts).
// Must not: write or remove a tag, open a file, decide anything it is not sure of — every doubt is "Unknown", and
// JS then judges the file as it always did.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace blessd {

enum class TagControl : uint8_t { Required, Requisite, Sufficient, Optional, Observe };
enum class TagAnswer : int8_t { None = -1, Deny = 0, Ok = 1, Allow = 2 };

// One stack entry, as JS hands it over (setTagPolicy).
struct TagRule {
  std::string name;
  TagControl control = TagControl::Required;
  bool has_generation = false;
  std::string generation;              // the current tag generation (actor generation + '#' + bump counter)
  TagAnswer constant = TagAnswer::None;  // the built-in default's answer: no tag, no scan
};

// What the reader thread settles with. Replaced as a whole (a shared_ptr swap) on reload and generation bumps.
struct TagPolicy {
  std::string ns;   // "trusted" or "user"
  std::string key;  // the MAC key, 32 bytes
  std::vector<TagRule> rules;
  bool ctime = true;  // ctime stamp mode: no result tag counts on an inode changed after our newest tag write
};

// src/tags/ctime.ts CTIME_SLACK_MS: how late after its `time` a tag write may land in ctime.
constexpr int64_t kCtimeSlackMs = 50;

// The file as a tag is bound to it (src/tags/stamp.ts), in the decimal text the codec writes.
struct FileStamp {
  std::string ino, igen, size, mtime_ns;
  // Not part of a tag's stamp (a tag write moves it): the inode's ctime, for the ctime-mode check.
  __int128 ctime_ns = 0;
};

// landedInTime of src/tags/ctime.ts: a tag written at `time_ms` still covers an inode whose ctime is `ctime_ns`.
inline bool landed_in_time(__int128 ctime_ns, int64_t time_ms) { return ctime_ns <= (__int128)(time_ms + kCtimeSlackMs) * 1000000; }

// One decoded value; fields as text, exactly as the TypeScript decoder would give them.
struct DecodedTag {
  bool ok = false;
  std::string problem;
  bool scanning = false;
  TagAnswer answer = TagAnswer::None;
  std::string generation, reason, digest, token, holder;
  bool has_reason = false, has_digest = false;
  FileStamp stamp;
  std::string time, until;
  std::string body, mac;
};

enum class TagJudgement : uint8_t { Valid, StaleStamp, StaleGeneration, BadMac, ScanningLive, ScanningExpired, Unparseable };
const char *judgement_name(TagJudgement j);

bool is_scanner_name(const std::string &s);
DecodedTag decode_tag(const char *raw, size_t n);
bool tag_mac_matches(const std::string &key, const std::string &xattr_name, const std::string &scanner, const std::string &body, const std::string &mac_hex);
std::string tag_mac(const std::string &key, const std::string &xattr_name, const std::string &scanner, const std::string &body);

// judgeTag of src/tags/judge.ts, mtime mode (content mode never settles natively). `generation` null: unchecked.
TagJudgement judge_tag(const std::string &xattr_name, const std::string &scanner, const DecodedTag &d, const std::string &key, const FileStamp &file, const std::string *generation, int64_t now_ms);

// The stack walk of src/policy/stack.ts over the answers found: Allow/Deny when every way the missing answers
// could go gives that verdict, None when it is still open. Observe entries never count.
TagAnswer settled_verdict(const std::vector<TagRule> &rules, const std::vector<TagAnswer> &answers);

}  // namespace blessd
