// The reader thread's use of native/tags: on a miss, a file whose valid tags settle the verdict is answered here,
// cached in the verdict table (and, when allowed, given its ignore mark), without waking JS. Denied files still
// reach JS once, as a 'settled' notice, so that the deny is logged with its scanner, reason and accessor.
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
  tag_policy_ = std::move(policy);
  return info.Env().Undefined();
}

bool Gate::SettleByTags(const struct fanotify_event_metadata *md, int fd, const InodeKey &key, bool perm, std::vector<OutEvent> &batch) {
  std::shared_ptr<const GateTagPolicy> policy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    policy = tag_policy_;
  }
  if (!policy) return false;
  Settlement s = settle_by_tags(fd, *policy, wall_clock_ms());
  if (s == Settlement::Unknown) return false;

  // Counted before the answer, so that whoever the answer wakes sees the count (an atomic add: no wait).
  (s == Settlement::Allowed ? c_.tags_allowed : c_.tags_denied)++;
  if (s == Settlement::Allowed) {
    if (perm) WriteResponse(fd, FAN_ALLOW);  // then the answer: the accessor is waiting
    VerdictEntry e = EntryOf(fd, Verdict::Allowed, FAN_ALLOW);
    AddIgnoreMark(fd);
    std::lock_guard<std::mutex> lock(mu_);
    RememberLocked(key, std::move(e));
    close(fd);
    return true;
  }

  if (perm) WriteResponse(fd, policy->deny_response);
  VerdictEntry e = EntryOf(fd, Verdict::Denied, policy->deny_response);
  std::lock_guard<std::mutex> lock(mu_);
  RememberLocked(key, std::move(e));
  if (pending_.size() + held_notices_ >= max_pending_) {
    c_.notices_dropped++;  // answered and cached; only the log line is lost, and counted
    close(fd);
    return true;
  }
  held_notices_++;
  OutEvent ev{EventKind::Settled};
  ev.fd = fd;
  ev.mask = md->mask;
  ev.pid = md->pid;
  ev.dev = key.dev;
  ev.ino = key.ino;
  batch.push_back(std::move(ev));
  return true;
}

}  // namespace blessd
