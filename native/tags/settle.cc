// See settle.h. The answers found mirror Daemon's StackState.answersOf (src/daemon/stack-state.ts), the decision
// TagSettler.settle (src/daemon/settle-by-tags.ts).
#include "tags/settle.h"
#include <algorithm>
#include <string>
#include "tags/read.h"

namespace blessd {

Settlement settle_by_tags(int fd, const TagPolicy &policy, int64_t now_ms, struct stat *st, uint32_t *gen) {
  if (policy.rules.empty()) return Settlement::Unknown;
  std::vector<TagAnswer> answers(policy.rules.size(), TagAnswer::None);
  for (size_t i = 0; i < policy.rules.size(); i++) answers[i] = policy.rules[i].constant;
  thread_local std::vector<RawTag> tags;
  tags.clear();
  if (!read_tags(fd, policy.ns, tags)) return Settlement::Unknown;
  FileStamp stamp;
  if (!read_stamp(fd, stamp, st, gen)) return Settlement::Unknown;
  // Every tag of the namespace is judged (not only the stack's): in ctime mode the newest of our writes, whoever's,
  // says whether the inode was touched after we last left it (src/tags/ctime.ts judgeCtime).
  std::vector<TagAnswer> found(policy.rules.size(), TagAnswer::None);
  int64_t newest = -1;
  for (const RawTag &t : tags) {
    if (t.too_long) continue;
    const TagRule *rule = nullptr;
    size_t idx = 0;
    for (size_t i = 0; i < policy.rules.size(); i++)
      if (policy.rules[i].name == t.scanner) {
        rule = &policy.rules[i];
        idx = i;
        break;
      }
    DecodedTag d = decode_tag(t.value.data(), t.value.size());
    const std::string *gen = rule && rule->has_generation ? &rule->generation : nullptr;
    TagJudgement j = judge_tag(t.name, t.scanner, d, policy.key, stamp, gen, now_ms);
    if (j == TagJudgement::BadMac || j == TagJudgement::Unparseable) continue;
    newest = std::max<int64_t>(newest, std::stoll(d.time));
    if (rule && j == TagJudgement::Valid) found[idx] = d.answer;
  }
  if (policy.ctime && newest >= 0 && !landed_in_time(stamp.ctime_ns, newest)) found.assign(found.size(), TagAnswer::None);
  for (size_t i = 0; i < found.size(); i++)
    if (found[i] != TagAnswer::None) answers[i] = found[i];
  // An observe scanner without an answer still wants to see the file: JS starts its scan.
  for (size_t i = 0; i < policy.rules.size(); i++)
    if (policy.rules[i].control == TagControl::Observe && answers[i] == TagAnswer::None) return Settlement::Unknown;
  TagAnswer v = settled_verdict(policy.rules, answers);
  return v == TagAnswer::Allow ? Settlement::Allowed : v == TagAnswer::Deny ? Settlement::Denied : Settlement::Unknown;
}

}  // namespace blessd
