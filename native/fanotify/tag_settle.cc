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

namespace {
int64_t wall_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
}  // namespace

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
  Settlement s = settle_by_tags(fd, *policy, wall_ms());
  if (s == Settlement::Unknown) return false;

  VerdictEntry e;
  e.gen_known = generation_of_fd(fd, e.gen);
  // Counted before the answer, so that whoever the answer wakes sees the count (an atomic add: no wait).
  (s == Settlement::Allowed ? c_.tags_allowed : c_.tags_denied)++;
  if (s == Settlement::Allowed) {
    if (perm) WriteResponse(fd, FAN_ALLOW);  // then the answer: the accessor is waiting
    e.verdict = Verdict::Allowed;
    char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    auto *fh = reinterpret_cast<struct file_handle *>(storage);
    fh->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) == 0) {
      e.handle_type = fh->handle_type;
      e.handle.assign(reinterpret_cast<char *>(fh->f_handle), fh->handle_bytes);
    }
    AddIgnoreMark(fd);
    std::lock_guard<std::mutex> lock(mu_);
    if (table_.size() >= max_entries_) ForgetAllLocked();
    table_[key] = std::move(e);
    close(fd);
    return true;
  }

  if (perm) WriteResponse(fd, policy->deny_response);
  e.verdict = Verdict::Denied;
  e.response = policy->deny_response;
  std::lock_guard<std::mutex> lock(mu_);
  if (table_.size() >= max_entries_) ForgetAllLocked();
  table_[key] = std::move(e);
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
