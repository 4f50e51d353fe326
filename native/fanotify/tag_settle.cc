// The reader thread's use of native/tags: on a miss, a file whose valid tags settle the verdict is answered here,
// cached in the verdict table (and, when allowed, given its ignore mark), without waking JS. Denied files still
// reach JS once, as a 'settled' notice, so that the deny is logged with its scanner, reason and accessor — after
// the reader asked whether the accessor merely writes (reader.cc step 4): a writer may replace a denied file.
// Nothing here opens a file: the tags and the stamp are read through the event fd the kernel gave us.
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include "fanotify/compat.h"
#include "fanotify/gate.h"
#include "tags/js.h"
#include "tags/settle.h"

namespace blessd {

// setTagPolicy(policy | null): JS's stack, key and generations (null: never settle here, e.g. content stamps).
Napi::Value Gate::SetTagPolicy(const Napi::CallbackInfo &info) {
  auto policy = tag_policy_from_js(info.Env(), info[0]);
  std::lock_guard<std::mutex> lock(mu_);
  tag_policy_ready_ = policy != nullptr;
  tag_policy_ = std::move(policy);
  return info.Env().Undefined();
}

Settlement Gate::SettleByTags(int fd, const InodeKey &key, bool perm, uint32_t &deny_response) {
  std::shared_ptr<const GateTagPolicy> policy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    policy = tag_policy_;
  }
  if (!policy) return Settlement::Unknown;
  struct stat st;
  uint32_t gen = 0;
  Settlement s = settle_by_tags(fd, *policy, wall_clock_ms(), &st, &gen);
  if (s != Settlement::Allowed) {
    if (s == Settlement::Denied) deny_response = policy->deny_response;
    return s;
  }
  // Counted before the answer, so that whoever the answer wakes sees the count (an atomic add: no wait).
  c_.tags_allowed++;
  // Cached and marked before the answer: the accessor's next step (the read after this open) would otherwise race
  // the mark and cost a second event, a second wake-up of this thread and of the accessor (bench/warm's restart
  // row counts them). The mark and the entry cost a few µs here; that second event costs tens.
  VerdictEntry e = EntryOf(fd, Verdict::Allowed, FAN_ALLOW, &st, gen);  // the stamp the tags were judged against
  e.hit = !AddIgnoreMark(fd);
  {
    std::lock_guard<std::mutex> lock(mu_);
    RememberLocked(key, std::move(e));
  }
  if (perm) WriteResponse(fd, FAN_ALLOW);
  close(fd);
  return s;
}

// The file's tags settle it denied (SettleByTags said so, and the accessor does not merely write): refuse, cache
// the deny, and hand the event to JS once so that the deny is logged with its scanner, reason and accessor.
void Gate::DenyByTags(const struct fanotify_event_metadata *md, int fd, const InodeKey &key, bool perm, uint32_t response, std::vector<OutEvent> &batch) {
  c_.tags_denied++;
  if (perm) WriteResponse(fd, response);
  VerdictEntry e = EntryOf(fd, Verdict::Denied, response);
  std::lock_guard<std::mutex> lock(mu_);
  e.open_marked = AddDenyOpenMarkLocked(fd, key);  // its next open is refused too (marks.cc)
  RememberLocked(key, std::move(e));
  if (pending_.size() + held_notices_ >= max_pending_) {
    c_.notices_dropped++;  // answered and cached; only the log line is lost, and counted
    close(fd);
    return;
  }
  held_notices_++;
  OutEvent ev{EventKind::Settled};
  ev.fd = fd;
  ev.mask = md->mask;
  ev.pid = md->pid;
  ev.dev = key.dev;
  ev.ino = key.ino;
  batch.push_back(std::move(ev));
}

}  // namespace blessd
