// See settle.h. The answers found mirror Daemon's StackState.answersOf (src/daemon/stack-state.ts), the decision
// TagSettler.settle (src/daemon/settle-by-tags.ts).
#include "tags/settle.h"
#include "tags/read.h"

namespace blessd {

Settlement settle_by_tags(int fd, const TagPolicy &policy, int64_t now_ms) {
  if (policy.rules.empty()) return Settlement::Unknown;
  std::vector<TagAnswer> answers(policy.rules.size(), TagAnswer::None);
  for (size_t i = 0; i < policy.rules.size(); i++) answers[i] = policy.rules[i].constant;
  thread_local std::vector<RawTag> tags;
  tags.clear();
  if (!read_tags(fd, policy.ns, tags)) return Settlement::Unknown;
  FileStamp stamp;
  if (!read_stamp(fd, stamp)) return Settlement::Unknown;
  for (const RawTag &t : tags) {
    if (t.too_long) continue;
    for (size_t i = 0; i < policy.rules.size(); i++) {
      const TagRule &r = policy.rules[i];
      if (r.name != t.scanner) continue;
      DecodedTag d = decode_tag(t.value.data(), t.value.size());
      if (!d.ok || d.scanning) break;
      if (judge_tag(t.name, t.scanner, d, policy.key, stamp, r.has_generation ? &r.generation : nullptr, now_ms) == TagJudgement::Valid) answers[i] = d.answer;
      break;
    }
  }
  // An observe scanner without an answer still wants to see the file: JS starts its scan.
  for (size_t i = 0; i < policy.rules.size(); i++)
    if (policy.rules[i].control == TagControl::Observe && answers[i] == TagAnswer::None) return Settlement::Unknown;
  TagAnswer v = settled_verdict(policy.rules, answers);
  return v == TagAnswer::Allow ? Settlement::Allowed : v == TagAnswer::Deny ? Settlement::Denied : Settlement::Unknown;
}

}  // namespace blessd
