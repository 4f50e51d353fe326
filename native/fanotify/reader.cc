// Overview — the reader thread: the hot path. Reads both groups, answers what it can alone, batches the rest for JS
// and enforces every forwarded event's deadline.
//
// Owns: the order in which one event is judged (HandleGateEvent), the caps on what waits for JS (maxPending, one
// uid's share), the deadlines of waiting events and of whole accesses, and the fallback records JS logs.
// Must not: allocate per fast-path event; open a file on a guarded filesystem (our own open would wait for this very
// thread); answer allow for anything it has not been told is fine — except our own process, exempt ones, writes by
// the file's writer, and opens in read mode (reads of the same file still wait); ever leave an event unanswered.
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <cstring>
#include "fanotify/compat.h"
#include "fanotify/gate.h"
#include "proc/task.h"
#include "tags/settle.h"

namespace blessd {

namespace {
constexpr size_t kBufSize = 64 * 1024;
constexpr size_t kMaxBudgets = 1 << 16;

// A path for display (readlink of our own fd: no open, no event).
std::string fd_path(int fd) {
  char link[40], target[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  return n > 0 ? std::string(target, n) : std::string();
}
}  // namespace

void Gate::Run() {
  pthread_setname_np(pthread_self(), "blessd-gate");  // so that top, perf and bench/gate can tell it apart
  struct pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {gate_fd_, POLLIN, 0}, {change_fd_, POLLIN, 0}};
  nfds_t nfds = change_fd_ >= 0 ? 3 : 2;
  held_.reserve(kMaxHeld);
  held_again_.reserve(kMaxHeld);
  while (!stopping_) {
    struct timespec timeout;
    int r = ppoll(fds, nfds, PollTimeout(timeout), nullptr);
    if (r < 0 && errno != EINTR) break;
    if (stopping_) break;
    SkipStoppedTime();  // before anything new is forwarded: only the deadlines that waited through a stop move
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      if (read(wake_fd_, &v, sizeof v) < 0) { /* nothing to drain */ }
    }
    auto *batch = new std::vector<OutEvent>();
    // Changes first: a write queued its change record before any later read could raise an event, so the table is
    // brought up to date before the events that may ask it (after a stop of this process, both queues are full).
    // A drain the answer thread asked for (DrainChanges): read before the request counts as done, so that every
    // change record queued before it was asked is in the table by then.
    const uint64_t asked = drain_asked_.load(std::memory_order_acquire);
    if (nfds == 3 && ((fds[2].revents & POLLIN) || asked != drain_seen_)) ReadChangeGroup(*batch);
    if (asked != drain_seen_) {
      drain_seen_ = asked;
      {
        std::lock_guard<std::mutex> lock(drain_mu_);
        drain_done_ = asked;
      }
      drain_cv_.notify_all();
    }
    if (fds[1].revents & POLLIN) ReadGateGroup(*batch);
    RetryHeld(*batch);
    ExpireDeadlines(*batch);
    {
      std::lock_guard<std::mutex> lock(mu_);
      TakeHandedLocked(*batch);  // lane_queue.cc: inodes a worker (or JS's claim) handed to JS
      if (lane_rewake_) {  // a worker went away with jobs still queued (LaneWorkerGone)
        lane_rewake_ = false;
        lane_wake_ = true;
      }
    }
    if (lane_wake_) {  // outside mu_: one wake-up per worker needed, for the whole round
      lane_wake_ = false;
      WakeLaneWorkers();
    }
    if (kick_answers_) {  // after mu_ is released: the answer thread's lock is never taken under it
      kick_answers_ = false;
      KickAnswers();
    }
    if (batch->empty()) delete batch;
    else Deliver(batch);
  }
  AnswerHeld();
}

// While a deadline is pending the reader looks at its clock at least every kLookEveryMs: a stop of the process then
// shows as a gap between two looks (SkipStoppedTime), whatever the deadlines are.
constexpr int64_t kLookEveryMs = 250;
// A gap of this much beyond the poll's own sleep and the thread's CPU time is a stop, not noise: on a loaded machine
// a runnable thread waits tens of ms for a CPU, and a read of tags can block in I/O for a while; a second is neither.
constexpr int64_t kStopMinNs = 1000 * 1000000LL;

// How long ppoll may sleep: until the earliest deadline (looking at least every kLookEveryMs); until the next look
// at a held event (their accessors are about to fall asleep); forever when nothing waits.
const struct timespec *Gate::PollTimeout(struct timespec &ts) {
  int64_t ns = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!deadlines_.empty()) {
      int64_t ms = (deadlines_.top().first - now_ns()) / 1000000 + 1;
      ns = (ms < 0 ? 0 : std::min<int64_t>(ms, kLookEveryMs)) * 1000000LL;
    }
  }
  if (!held_.empty()) {
    int64_t soonest = INT64_MAX;
    for (const HeldEvent &h : held_) soonest = std::min(soonest, h.next_ns);
    int64_t wait = std::max<int64_t>(0, soonest - now_ns());
    ns = ns < 0 ? wait : std::min<int64_t>(ns, wait);
  }
  poll_timeout_ns_ = ns;
  if (ns < 0) return nullptr;
  ts.tv_sec = ns / 1000000000LL;
  ts.tv_nsec = ns % 1000000000LL;
  return &ts;
}

static int64_t thread_cpu_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// A deadline measures time the daemon could have worked on the event. When the whole process was stopped (SIGSTOP,
// a frozen cgroup, a VM pause) JS could not answer either, and on resume it can: answering every event that waited
// through the stop with the deadline's EAGAIN would turn the stop itself into refusals. A JS stall alone (a busy or
// paused event loop) does not show here: this thread keeps looking, and the deadline answers as it should.
// The stop shows on this thread's own clock: the time since its last look, less what poll() was allowed to sleep and
// what the thread spent on a CPU, is time nobody in the process ran. The pending deadlines (and the access budgets
// that bound them) move by that much; at most one look interval of the stop is still counted.
void Gate::SkipStoppedTime() {
  const int64_t now = now_ns(), cpu = thread_cpu_ns();
  const int64_t gap = now - looked_ns_, busy = cpu - looked_cpu_ns_, slept = poll_timeout_ns_;
  const bool first = looked_ns_ == 0;
  looked_ns_ = now;
  looked_cpu_ns_ = cpu;
  if (first || slept < 0) return;  // nothing was pending while we slept: no deadline to move
  const int64_t lost = gap - slept - busy;
  if (lost < kStopMinNs) return;
  std::lock_guard<std::mutex> lock(mu_);
  decltype(deadlines_) moved;
  for (; !deadlines_.empty(); deadlines_.pop()) {
    auto it = pending_.find(deadlines_.top().second);
    if (it == pending_.end() || it->second.answered) continue;  // answered meanwhile: its entry would be skipped anyway
    moved.emplace(deadlines_.top().first + lost, deadlines_.top().second);
  }
  deadlines_.swap(moved);
  // A budget still running bounds the events that come next: it was stopped too. An expired one stays expired
  // (its answer was given before the stop; when it lapses, the next event waits for JS again).
  for (auto &b : budgets_)
    if (b.second.expired_ns == 0 && b.second.start_ns != 0) b.second.start_ns += lost;
  c_.stops_seen++;
  c_.stopped_ms += lost / 1000000;
}

// What a deadline answers for this inode: never allow for an inode the table holds as denied. Called with mu_ held.
uint32_t Gate::DeadlineAnswerLocked(const InodeKey &key) {
  auto it = table_.find(key);
  if (it != table_.end() && it->second.verdict == Verdict::Denied) {
    c_.deadline_kept_deny++;
    return it->second.response;
  }
  return deadline_answer_;
}

void Gate::ExpireDeadlines(std::vector<OutEvent> &batch) {
  int64_t now = now_ns();
  std::lock_guard<std::mutex> lock(mu_);
  // lane_queue.cc: a native job whose event ran out of time is too slow to keep the inode: handed to JS (its worker's
  // finish then finds it gone), so that a stuck or lost job never makes the inode's next accesses wait too.
  std::vector<InodeKey> slow_jobs;
  while (!deadlines_.empty() && deadlines_.top().first <= now) {
    uint64_t id = deadlines_.top().second;
    deadlines_.pop();
    auto it = pending_.find(id);
    // JS answered it and the answer thread has not written it yet: JS has not ended its turn since (answers.cc).
    if (it != pending_.end() && it->second.queued) kick_answers_ = true;
    if (it == pending_.end() || it->second.answered) continue;
    Pending &p = it->second;
    uint32_t response = DeadlineAnswerLocked(p.key);
    // Who and what, while the accessor still waits (after the answer it may be gone); then the answer.
    OutEvent rec{EventKind::Fallback};
    bool report = FallbackSlotLocked(FallbackWhy::Deadline, rec);
    if (report) FillFallback(rec, p.fd, p.tid, p.mask, p.key, response);
    AnswerLocked(id, p, response);
    c_.by_deadline++;
    if (report) batch.push_back(std::move(rec));
    // The access is out of time: its later events get this answer at once until JS gives a verdict.
    auto b = budgets_.find(p.key);
    if (b != budgets_.end()) {
      if (b->second.expired_ns == 0) b->second.expired_ns = now;
      b->second.response = response;
      if (b->second.live > 0) b->second.live--;
    }
    auto u = pending_by_uid_.find(p.uid);
    if (u != pending_by_uid_.end() && --u->second == 0) pending_by_uid_.erase(u);
    if (p.lane) slow_jobs.push_back(p.key);
  }
  for (const InodeKey &key : slow_jobs) HandOverLocked(key);  // the handed events go out with this very batch
  TakeHandedLocked(batch);
}

// Fallback records for JS to log: at most kFallbackRecordsPerSecond per reason, the rest counted in the next record.
// Called with mu_ held; true if this one is to be sent (`rec` then carries the count of those not sent before it).
bool Gate::FallbackSlotLocked(FallbackWhy why, OutEvent &rec) {
  int64_t second = now_ns() / 1000000000LL;
  auto &w = fallback_windows_[(int)why];
  if (w.second != second) {
    w.second = second;
    w.sent = 0;
  }
  if (w.sent >= kFallbackRecordsPerSecond) {
    w.suppressed++;
    c_.fallbacks_suppressed++;
    return false;
  }
  w.sent++;
  rec.why = why;
  rec.suppressed = w.suppressed;
  w.suppressed = 0;
  return true;
}

// Path, process, uid and executable of a fallback record: readlinks and one /proc read, no open of a guarded file.
void Gate::FillFallback(OutEvent &rec, int fd, int32_t tid, uint64_t mask, const InodeKey &key, uint32_t response) {
  rec.tid = tid;
  rec.pid = tid;
  rec.mask = mask;
  rec.dev = key.dev;
  rec.ino = key.ino;
  rec.response = response;
  pid_t tgid;
  uint32_t uid;
  if (task_identity(tid, tgid, uid)) {
    rec.pid = tgid;
    rec.uid = uid;
  }
  rec.path = fd_path(fd);
  char link[64], target[4096];
  snprintf(link, sizeof link, "/proc/%d/exe", (int)tid);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n > 0) rec.exe.assign(target, n);
}

void Gate::ReadGateGroup(std::vector<OutEvent> &batch) {
  alignas(struct fanotify_event_metadata) static thread_local char buf[kBufSize];
  for (;;) {
    ssize_t len = read(gate_fd_, buf, sizeof buf);
    if (len < 0) {
      // EMFILE/ENFILE: the kernel already denied that access (docs/kernel.md); count it and let poll bring us back.
      if (errno != EAGAIN && errno != EINTR) c_.read_errors++;
      return;
    }
    if (len == 0) return;
    auto *md = reinterpret_cast<struct fanotify_event_metadata *>(buf);
    while (FAN_EVENT_OK(md, len)) {
      HandleGateEvent(md, batch);
      md = FAN_EVENT_NEXT(md, len);
    }
  }
}

// Events carry the thread id (FAN_REPORT_TID): a thread of ours is ours whatever its id.
bool Gate::IsOwn(int32_t tid) { return tid == own_pid_ || task_in_group(own_pid_, tid); }

bool Gate::IsExempt(int32_t tid) {
  // called with mu_ held; exempt pids are few (registered scanners), each checked with one tgkill(…, 0)
  if (exempt_pids_.count(tid)) return true;
  for (int32_t pid : exempt_pids_)
    if (task_in_group(pid, tid)) return true;
  if (!exempt_uids_.empty()) {
    long uid = task_uid(tid);
    if (uid >= 0 && exempt_uids_.count(uid)) return true;
  }
  return false;
}

// A kernel queue overflowed: events were lost, so nothing cached can be trusted. Forget, never assume.
void Gate::HandleOverflow(std::vector<OutEvent> &batch) {
  c_.overflows++;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ForgetAllLocked(/*walk_after=*/true);  // what tags settle is settled again ahead of the accesses (settle_walk.cc)
  }
  batch.push_back(OutEvent{EventKind::Overflow});
}

// The order in which one gate event is judged (each step answers and closes, or falls through):
//   1. our own process, exempt processes, inodes outside every tree → allow
//   2. a write-family syscall on an fd that writes this inode     → allow (writers are never blocked by their writes)
//      (an mmap(PROT_WRITE, MAP_SHARED) is remembered: every later access of that inode is judged anew)
//   3. the verdict table: Allowed, once pending changes are read and the file's stamp still matches → allow
//   4. the file's valid tags settle it allowed (restart, reload, a swept entry or evicted mark) → allow, cached, marked
//   5. an open for writing only                                   → allow
//   6. the verdict table: Denied, or the tags settle it denied    → the refusal, opens included (read mode too)
//   7. an access whose deadline already passed, judgement pending → the same answer at once
//   8. Miss: an open in read mode → allow; anything else waits for JS (within the caps)
// Reading /proc/<tid>/syscall is the dearest step (tens of µs, and the accessor may not have fallen asleep yet):
// for an open it is read only where it changes the answer (5 and 8; an allow is an allow), and an accessor still on
// its way to sleep never makes the reader wait — its event is set aside and judged again after the batch (Hold).
void Gate::HandleGateEvent(const struct fanotify_event_metadata *md, std::vector<OutEvent> &batch, int64_t held_since) {
  if (md->vers != FANOTIFY_METADATA_VERSION) return;
  if (md->mask & FAN_Q_OVERFLOW) return HandleOverflow(batch);
  const int fd = md->fd;
  if (fd < 0) return;  // FAN_NOFD: nothing to answer with
  const bool perm = md->mask & kPermMask;
  if (held_since != 0) {
    // judged again after being set aside: counted when it came
  } else if (md->mask & FAN_OPEN_EXEC_PERM) c_.exec_perm++;
  else if (md->mask & FAN_OPEN_PERM) c_.open_perm++;
  else if (md->mask & FAN_PRE_ACCESS) c_.pre_access++;
  else c_.open_notice++;
  const int32_t tid = md->pid;

  // 1. Our own process (reads through event fds generate nothing, but our other opens do).
  if (IsOwn(tid)) {
    if (perm) WriteResponse(fd, FAN_ALLOW);
    close(fd);
    c_.fast_own++;
    return;
  }

  InodeKey key;
  struct stat st;
  bool have_key = fstat(fd, &st) == 0;
  if (have_key) key = InodeKey{(uint64_t)st.st_dev, (uint64_t)st.st_ino};
  const bool is_open = (md->mask & FAN_OPEN_PERM) && !(md->mask & FAN_OPEN_EXEC_PERM);
  bool open_waits = false;

  enum { Miss, Answer } fast = Miss;
  uint32_t response = 0;
  bool dirty = false;    // changed since its last verdict: its tags are being cleared, only JS may judge it
  bool denied = false;   // the table holds a deny: `response` is the refusal, unless the accessor only writes
  bool outside = false;  // outside every tree guard: remember it (trees.cc)
  if (have_key && TreeCheckpoint(fd, key, md->mask, outside)) {
    WriteResponse(fd, FAN_ALLOW);
    if (outside) RememberOutside(fd, key);
    close(fd);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (IsExempt(tid)) {
      fast = Answer;
      response = FAN_ALLOW;
      c_.fast_exempt++;
    } else if (have_key && KnownOutsideLocked(key, md->mask, outside)) {
      fast = Answer;  // outside every tree (trees.cc)
      response = FAN_ALLOW;
    }
    open_waits = is_open && have_key && open_wait_devs_.count(key.dev);
  }
  // A tree guard's filesystem mark asks about every inode; those outside every tree pass here (trees.cc).
  if (fast == Miss && have_key && TreeMiss(fd, key, md->mask, outside)) {
    fast = Answer;
    response = FAN_ALLOW;
  }

  // 2. Pre-content events fire on write() and ftruncate() too: the accessor's blocked syscall says which (O(1)).
  TaskAccess access = fast == Miss && have_key && (md->mask & FAN_PRE_ACCESS) ? task_access(tid, key.dev, key.ino) : TaskAccess::Read;
  if (access == TaskAccess::NotYet) {
    if (Hold(md, held_since)) return;
    access = TaskAccess::Read;  // held long enough (or no room): it waits for the verdict like a read
  }
  if (access == TaskAccess::SharedWriteMap) {
    std::lock_guard<std::mutex> lock(mu_);
    c_.shared_write_maps++;
    if (shared_maps_.size() < kMaxSharedMaps || shared_maps_.count(key)) shared_maps_[key] = now_ns();
    else c_.shared_maps_untracked++;
  }
  if (access == TaskAccess::Write) {
    fast = Answer;
    response = FAN_ALLOW;
    c_.fast_writer++;
  }

  // 3. The verdict table. An Allowed entry seen here means the kernel dropped its ignore mark — evicted, refused
  // while the file was open for write, or cleared by a write whose change record is queued by that same fsnotify
  // call: read those records before trusting it, and check the file's stamp against the one blessed.
  bool retry_mark = false;
  bool shared_map = false;
  if (fast == Miss && have_key) {
    std::lock_guard<std::mutex> lock(mu_);
    // Not the mmap that made it so: that one maps the content as it is, judged like a read.
    shared_map = access != TaskAccess::SharedWriteMap && shared_maps_.count(key) > 0;
  }
  if (shared_map) {
    // Shared-writable mapped: what is cached says nothing about what a store put there since. JS judges it anew.
    SharedMapRejudge(fd, key, tid, batch);
    dirty = true;
  }
  for (int pass = 0; fast == Miss && have_key && !shared_map && pass < 2; pass++) {
    bool drain = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = table_.find(key);
      if (it == table_.end() || it->second.verdict == Verdict::Dirty) {
        dirty = it != table_.end();
        break;
      }
      uint32_t gen = 0;
      bool gen_ok = !it->second.gen_known || (generation_of_fd(fd, gen) && gen == it->second.gen);
      if (!gen_ok) {
        table_.erase(it);  // a recycled inode number: the verdict was someone else's
        break;
      }
      if (it->second.verdict == Verdict::Denied) {
        denied = true;  // refused below, once we know the opener does not merely write
        response = it->second.response;
        break;
      }
      if (pass == 0 && change_fd_ >= 0) {
        drain = true;  // Allowed: look at pending changes first (outside the lock: HandleChangeEvent takes it)
      } else if (!it->second.stamp_known || same_full_stamp(it->second, st)) {
        fast = Answer;
        response = FAN_ALLOW;
        c_.fast_allowed++;
        it->second.hit = true;  // its ignore mark does not silence it: keep it through the next sweep
        // Re-add the missing ignore mark, at most every 100 ms per inode.
        int64_t now = now_ns();
        if (now - it->second.mark_retry_ns > 100000000LL) {
          it->second.mark_retry_ns = now;
          retry_mark = true;
        }
      } else {
        table_.erase(it);  // changed since it was blessed; its change record is on its way: judge again
        c_.stale_allowed++;
        break;
      }
    }
    if (drain) ReadChangeGroup(batch);
  }
  if (fast == Answer) {
    if (perm) WriteResponse(fd, response);
    if (retry_mark) AddIgnoreMark(fd);
    if (outside) RememberOutside(fd, key);
    close(fd);
    return;
  }

  // 4. A file whose valid tags settle the verdict is answered here (restart, reload, a swept entry or evicted
  // mark) — a deny tag refuses even the open in read mode — before any fallback answer; else JS decides. Changes
  // still queued are read first: a write that dropped the ignore mark also queued its modify record, which turns
  // the inode dirty in the table (its tags may not be cleared yet).
  Settlement settled = Settlement::Unknown;
  uint32_t tags_refusal = 0;
  if (have_key && !dirty && !denied && tag_policy_ready_.load(std::memory_order_relaxed)) {
    if (change_fd_ >= 0) {
      ReadChangeGroup(batch);
      std::lock_guard<std::mutex> lock(mu_);
      auto it = table_.find(key);
      dirty = it != table_.end() && it->second.verdict == Verdict::Dirty;
    }
    if (!dirty) settled = SettleByTags(fd, key, perm, tags_refusal);
    if (settled == Settlement::Allowed) return;  // answered, cached, marked and closed
  }

  // 5. An open for writing only cannot read (no read(), no mmap): it passes in both modes, denied file or not, so
  // that a writer can always replace content. Whether an opener writes is read while it still sits in open() —
  // only here, where the answer depends on it.
  int accmode = is_open ? task_open_accmode(tid) : -1;
  if (accmode == kAccmodeNotYet) {
    if (Hold(md, held_since)) return;
    accmode = -1;
  }
  if (accmode == O_WRONLY) {
    if (perm) WriteResponse(fd, FAN_ALLOW);
    close(fd);
    c_.fast_writer++;  // no notice either: its writes dirty the file, and the rescan follows its close
    return;
  }

  // 6. Known denied, by the table or by the file's tags.
  if (denied) {
    // Counted before the answer: the answered process (and whoever waits for it) may read the stats at once.
    c_.fast_denied++;
    if (is_open) c_.open_refused++;
    if (perm) WriteResponse(fd, response);
    close(fd);
    return;
  }
  if (settled == Settlement::Denied) return DenyByTags(md, fd, key, perm, tags_refusal, batch);

  // 7. The deadline bounds an access, not an event: once it answered, this inode's later events get that answer
  // at once while JS has not given a verdict (a multi-MiB read under a stalled scanner costs one deadline, not one
  // per read()).
  OutEvent rec{EventKind::Fallback};
  bool report = false;
  if (perm && have_key && !(is_open && !open_waits)) {
    std::lock_guard<std::mutex> lock(mu_);
    auto b = budgets_.find(key);
    if (b != budgets_.end() && b->second.expired_ns != 0) {
      if (now_ns() - b->second.expired_ns < access_ns_) {
        fast = Answer;
        response = b->second.response;
        c_.by_access_deadline++;
        report = FallbackSlotLocked(FallbackWhy::AccessDeadline, rec);
      } else if (b->second.live == 0) {
        budgets_.erase(b);  // long enough: let JS try again
      }
    }
  }
  if (fast == Answer) {
    if (report) FillFallback(rec, fd, tid, md->mask, key, response);
    WriteResponse(fd, response);
    close(fd);
    if (report) batch.push_back(std::move(rec));
    return;
  }

  // 8. Miss: nothing cached answers this event.
  if (is_open && !open_waits) {
    // Read mode: an open asks only where a deny mark or a tree checkpoint made it ask (compat.h), and a miss
    // passes — its reads wait. No notice: the judgement starts at the first read (one wake-up of JS per file).
    WriteResponse(fd, FAN_ALLOW);
    c_.open_allowed++;
    close(fd);
    return;
  }
  if (!perm) {
    // A notification (no mark asks for one on this group): nothing to answer, nothing for JS.
    close(fd);
    return;
  }
  ForwardPermission(md, fd, key, batch);
}

// An inode with a shared writable mapping (until a sweep finds it no more), accessed: stores through the mapping raise no event, and one to a page
// already written through it does not even move ctime (exp11), so neither the table nor the tags can vouch for the
// content. Make it dirty here, as a modify would (the table entry, and a change record ahead of the access in this
// batch: JS clears the tags and judges the content as it is now). The kernel keeps its ignore mark off meanwhile
// (it adds none while the file is open for write, which a mapping keeps it).
void Gate::SharedMapRejudge(int fd, const InodeKey &key, int32_t tid, std::vector<OutEvent> &batch) {
  // A write and its close, as JS knows them: dirty, and nobody left writing, so the access waiting behind this
  // record starts the rescan at once instead of waiting for a close that only munmap will bring.
  OutEvent ev{EventKind::Change};
  ev.mask = FAN_MODIFY | FAN_CLOSE_WRITE;
  ev.pid = tid;
  ev.dev = key.dev;
  ev.ino = key.ino;
  uint32_t gen = 0;
  if (generation_of_fd(fd, gen)) ev.gen = gen;
  char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto *fh = reinterpret_cast<struct file_handle *>(storage);
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  struct statfs sfs;
  if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) == 0 && fstatfs(fd, &sfs) == 0) {
    ev.fsid = fsid_hex(&sfs.f_fsid);
    ev.handle_type = fh->handle_type;
    ev.handle.assign(reinterpret_cast<const char *>(fh->f_handle), fh->handle_bytes);
    ev.resolved = true;
  }
  ev.path = fd_path(fd);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = table_.find(key);
    if (it == table_.end()) it = table_.emplace(key, VerdictEntry{}).first;
    BumpSeqLocked(key);
    BumpContentSeqLocked(key);
    DropDenyOpenMarkLocked(it->second, key, fd);
    it->second = VerdictEntry{};
    it->second.verdict = Verdict::Dirty;
    c_.shared_map_rejudged++;
  }
  c_.change_forwarded++;
  batch.push_back(std::move(ev));
}

// Set an event aside whose accessor has not fallen asleep in its syscall yet (HandleGateEvent steps 2 and 5): it is
// judged again from the start after this batch, for at most kHoldNs since it came; then (or with no room left) its
// accessor counts as a reader. The reader thread goes on with the other events meanwhile instead of sleeping.
bool Gate::Hold(const struct fanotify_event_metadata *md, int64_t held_since) {
  const int64_t now = now_ns();
  if (held_since != 0 && now - held_since >= kHoldNs) {
    c_.held_expired++;
    return false;
  }
  if (held_.size() >= kMaxHeld || md->event_len > sizeof(HeldEvent::bytes)) return false;
  HeldEvent &h = held_.emplace_back();
  memcpy(h.bytes, md, md->event_len);
  h.since_ns = held_since != 0 ? held_since : now;
  // Each look costs /proc reads, on the CPU the accessor needs to reach its sleep: look again soon, then less often.
  h.delay_ns = held_since != 0 && held_delay_ns_ > 0 ? std::min<int64_t>(held_delay_ns_ * 2, kHeldMaxDelayNs) : kHeldPollNs;
  h.next_ns = now + h.delay_ns;
  if (held_since == 0) c_.held++;
  return true;
}

// The events set aside, judged again in arrival order (each may be set aside once more, keeping its first time).
void Gate::RetryHeld(std::vector<OutEvent> &batch) {
  if (held_.empty()) return;
  held_again_.swap(held_);  // both keep their capacity: no allocation per round
  const int64_t now = now_ns();
  for (HeldEvent &h : held_again_) {
    if (h.next_ns > now) {
      held_.push_back(h);  // not its time yet
      continue;
    }
    held_delay_ns_ = h.delay_ns;
    HandleGateEvent(reinterpret_cast<const struct fanotify_event_metadata *>(h.bytes), batch, h.since_ns);
  }
  held_delay_ns_ = 0;
  held_again_.clear();
}

// The thread is stopping: nothing set aside may stay unanswered. Not judged, so the deadline's answer (fail closed
// by default), as Shutdown gives the pending ones.
void Gate::AnswerHeld() {
  for (HeldEvent &h : held_) {
    auto *md = reinterpret_cast<const struct fanotify_event_metadata *>(h.bytes);
    if (md->mask & kPermMask) WriteResponse(md->fd, deadline_answer_);
    close(md->fd);
    c_.at_close++;
  }
  held_.clear();
}

// The accessor's identity, from the cache (Identity in gate.h says why a moment's staleness is fine) or from one
// /proc/<tid>/status read, which also gives the thread's name for root's check. Null if the task is gone.
const Gate::Identity *Gate::IdentityOf(int32_t tid, bool want_root_js) {
  Identity &slot = identities_[(uint32_t)tid % kIdentitySlots];
  const int64_t now = now_ns();
  if (slot.tid != tid || now - slot.at_ns >= kIdentityNs) {
    pid_t tgid;
    uint32_t uid;
    char name[32] = "";
    if (!task_identity(tid, tgid, uid, name, sizeof name)) {
      slot.tid = 0;
      return nullptr;
    }
    slot.tid = tid;
    slot.tgid = tgid;
    slot.uid = uid;
    slot.at_ns = now;
    slot.root_js = uid != 0 ? 0 : want_root_js ? (RootNeedsJs(tid, tgid, name) ? 1 : 0) : -1;
  } else if (slot.root_js < 0 && want_root_js) {
    slot.root_js = RootNeedsJs(tid, slot.tgid, nullptr) ? 1 : 0;
  }
  return &slot;
}

// A permission event JS must answer. Past maxPending, or past this uid's share of it, the answer is a retryable
// refusal at once — never allow: overload must not open the gate (RLIMIT_NOFILE is the wall behind the cap).
void Gate::ForwardPermission(const struct fanotify_event_metadata *md, int fd, const InodeKey &key, std::vector<OutEvent> &batch) {
  OutEvent ev{EventKind::Perm};
  ev.fd = fd;
  ev.mask = md->mask;
  ev.tid = md->pid;
  ev.pid = md->pid;
  ev.dev = key.dev;
  ev.ino = key.ino;
  uint32_t uid = UINT32_MAX;  // unknown (the task is gone): one shared bucket
  const bool lane_hint = lane_hint_.load(std::memory_order_relaxed);
  const Identity *who = IdentityOf(md->pid, lane_hint);
  if (who) {
    ev.pid = who->tgid;
    ev.uid = uid = who->uid;
  }
  uint32_t gen = 0;
  if (generation_of_fd(fd, gen)) ev.gen = gen;
  // Info records: the pre-content range.
  const char *p = reinterpret_cast<const char *>(md) + md->metadata_len;
  const char *end = reinterpret_cast<const char *>(md) + md->event_len;
  while (p + sizeof(struct fanotify_event_info_header) <= end) {
    auto *hdr = reinterpret_cast<const struct fanotify_event_info_header *>(p);
    if (hdr->len == 0 || p + hdr->len > end) break;
    if (hdr->info_type == FAN_EVENT_INFO_TYPE_RANGE && hdr->len >= sizeof(RangeInfo)) {
      auto *range = reinterpret_cast<const RangeInfo *>(p);
      ev.offset = (int64_t)range->offset;
      ev.count = (int64_t)range->count;
    }
    p += hdr->len;
  }

  FallbackWhy refused = FallbackWhy::kCount;
  OutEvent rec{EventKind::Fallback};
  bool report = false;
  bool in_lane = false;
  uint32_t refusal = overload_answer_;
  // Root's kernel nfsd threads and another daemon's peer scans are JS's to judge (dispatch.ts): a name check here.
  const bool js_only = who && who->root_js == 1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto u = pending_by_uid_.find(uid);
    LaneRoute route = LaneRoute::Js;
    if (pending_.size() >= max_pending_) refused = FallbackWhy::Overload;
    else if (u != pending_by_uid_.end() && u->second >= max_pending_per_uid_) refused = FallbackWhy::UidShare;
    else if ((route = LaneRouteLocked(key, uid, js_only)) == LaneRoute::Refuse) {
      refused = FallbackWhy::QueuePerUid;
      refusal = lane_refusal_;
    }
    if (refused == FallbackWhy::kCount) {
      if (budgets_.size() > kMaxBudgets) {
        // Long-expired budgets nobody waits on are only a memory of a timeout: drop them (their next event waits).
        int64_t now = now_ns();
        for (auto b = budgets_.begin(); b != budgets_.end();) {
          if (b->second.live == 0 && now - b->second.expired_ns >= access_ns_) b = budgets_.erase(b);
          else ++b;
        }
      }
      ev.id = next_id_++;
      int64_t now = now_ns();
      auto &budget = budgets_[key];
      if (budget.start_ns == 0) budget.start_ns = now;
      budget.live++;
      Pending &p = pending_.emplace(ev.id, Pending{fd, now, key, uid, md->pid, md->mask}).first->second;
      p.content_seq = content_seq_[SeqBucket(key)];
      IndexPendingLocked(ev.id, key);
      ev.seq = change_seq_[SeqBucket(key)];
      pending_by_uid_[uid]++;
      deadlines_.emplace(std::min(now + deadline_ns_, budget.start_ns + access_ns_), ev.id);
      c_.forwarded++;
      // lane_queue.cc: a cold inode nobody in JS holds waits for a pool worker; the rest is JS's, as before.
      if (route == LaneRoute::Join) {
        lane_jobs_[key].events.push_back(ev);
        p.lane = true;
        c_.lane_joined++;
      } else if (route == LaneRoute::New) {
        LaneQueueLocked(key, uid, ev, fd, p);
      } else {
        p.js = true;
        JsHoldLocked(key);
      }
      in_lane = p.lane;
    } else {
      if (refused == FallbackWhy::Overload) c_.overload++;
      else if (refused == FallbackWhy::UidShare) c_.uid_share++;
      else c_.lane_refused++;
      report = FallbackSlotLocked(refused, rec);
    }
  }
  if (refused != FallbackWhy::kCount) {
    // Who it was, read while the accessor still waits (a few /proc readlinks); then the answer, before the log.
    if (report) FillFallback(rec, fd, md->pid, md->mask, key, refusal);
    WriteResponse(fd, refusal);
    close(fd);
    if (report) batch.push_back(std::move(rec));
    return;
  }
  if (!in_lane) batch.push_back(std::move(ev));
}

void Gate::ReadChangeGroup(std::vector<OutEvent> &batch) {
  alignas(struct fanotify_event_metadata) static thread_local char buf[kBufSize];
  for (;;) {
    ssize_t len = read(change_fd_, buf, sizeof buf);
    if (len <= 0) return;
    auto *md = reinterpret_cast<struct fanotify_event_metadata *>(buf);
    while (FAN_EVENT_OK(md, len)) {
      HandleChangeEvent(md, batch);
      md = FAN_EVENT_NEXT(md, len);
    }
  }
}

// The inode behind a handle, without a syscall for the common layouts; open_by_handle_at(O_PATH) otherwise.
static bool decode_handle(int type, const unsigned char *h, size_t n, uint64_t &ino, uint32_t &gen) {
  uint32_t w[4] = {0, 0, 0, 0};
  memcpy(w, h, std::min<size_t>(n, sizeof w));
  if (type == 1 && n == 8) {  // FILEID_INO32_GEN: ext4, xfs (32-bit inodes)
    ino = w[0];
    gen = w[1];
    return true;
  }
  if (type == 1 && n == 12) {  // tmpfs: generation, then the 64-bit inode number
    gen = w[0];
    ino = (uint64_t)w[1] | ((uint64_t)w[2] << 32);
    return true;
  }
  if (type == 0x81 && n == 12) {  // xfs with 64-bit inode numbers
    ino = (uint64_t)w[0] | ((uint64_t)w[1] << 32);
    gen = w[2];
    return true;
  }
  return false;
}

// An O_PATH open raises no fanotify event, so the reader thread may use it (docs/kernel.md: never a real open here).
static int open_path_by_handle(int mount_fd, const OutEvent &ev) {
  if (ev.handle.size() > MAX_HANDLE_SZ) return -1;
  char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto *h = reinterpret_cast<struct file_handle *>(storage);
  h->handle_bytes = ev.handle.size();
  h->handle_type = ev.handle_type;
  memcpy(h->f_handle, ev.handle.data(), ev.handle.size());
  return open_by_handle_at(mount_fd, h, O_PATH | O_CLOEXEC);
}

void Gate::HandleChangeEvent(const struct fanotify_event_metadata *md, std::vector<OutEvent> &batch) {
  if (md->vers != FANOTIFY_METADATA_VERSION) return;
  if (md->mask & FAN_Q_OVERFLOW) return HandleOverflow(batch);
  c_.change++;
  // Our own tag writes show up as ATTRIB: not news to us. Our own content changes are changes like any other.
  if (md->pid == own_pid_ && !(md->mask & ~(uint64_t)(FAN_ATTRIB | FAN_ONDIR))) return;

  OutEvent ev{EventKind::Change};
  ev.mask = md->mask;
  ev.pid = md->pid;
  const char *p = reinterpret_cast<const char *>(md) + md->metadata_len;
  const char *end = reinterpret_cast<const char *>(md) + md->event_len;
  while (p + sizeof(struct fanotify_event_info_header) <= end) {
    auto *hdr = reinterpret_cast<const struct fanotify_event_info_header *>(p);
    if (hdr->len == 0 || p + hdr->len > end) break;
    auto *fid = reinterpret_cast<const struct fanotify_event_info_fid *>(p);
    auto *fh = reinterpret_cast<const struct file_handle *>(fid->handle);
    const char *hbytes = reinterpret_cast<const char *>(fh->f_handle);
    switch (hdr->info_type) {
      case FAN_EVENT_INFO_TYPE_FID:
        ev.fsid = fsid_hex(&fid->fsid);
        ev.handle_type = fh->handle_type;
        ev.handle.assign(hbytes, fh->handle_bytes);
        break;
      case FAN_EVENT_INFO_TYPE_DFID_NAME:
      case FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:  // a rename: keep the new place
        if (ev.fsid.empty()) ev.fsid = fsid_hex(&fid->fsid);
        ev.dir_handle.assign(hbytes, fh->handle_bytes);
        ev.name = hbytes + fh->handle_bytes;
        if (!ev.handle_type) ev.handle_type = fh->handle_type;
        break;
      default:
        break;
    }
    p += hdr->len;
  }

  uint64_t ino = 0;
  uint32_t gen = 0;
  bool resolved = false;
  int path_fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto fs = filesystems_.find(ev.fsid);
    if (fs != filesystems_.end() && !ev.handle.empty()) {
      ev.dev = fs->second.dev;
      resolved = decode_handle(ev.handle_type, reinterpret_cast<const unsigned char *>(ev.handle.data()), ev.handle.size(), ino, gen);
      if (!resolved) {
        path_fd = open_path_by_handle(fs->second.mount_fd, ev);
        struct stat st;
        if (path_fd >= 0 && fstat(path_fd, &st) == 0) {
          ev.dev = st.st_dev;
          ino = st.st_ino;
          resolved = true;
        }
      }
    }
    ev.ino = ino;
    ev.gen = gen;
    ev.resolved = resolved;
    if (resolved) {
      InodeKey key{ev.dev, ino};
      BumpSeqLocked(key);  // lane.cc: a judgement under way for this inode is not concluded by a worker
      const bool is_dir = md->mask & FAN_ONDIR;
      if (!is_dir && (md->mask & (FAN_MODIFY | FAN_CLOSE_WRITE))) BumpContentSeqLocked(key);  // answers.cc
      auto it = table_.find(key);
      if (TreeChangeLocked(md->mask, ev, key, it != table_.end())) {
        if (path_fd >= 0) close(path_fd);
        return;
      }
      if (!is_dir && (md->mask & FAN_MODIFY) && !(md->mask & ~(uint64_t)FAN_MODIFY)) {
        // The first modify makes the file dirty; the rest of a write storm is the same news.
        if (it != table_.end() && it->second.verdict == Verdict::Dirty) {
          c_.coalesced++;
          if (path_fd >= 0) close(path_fd);
          return;
        }
        if (table_.size() >= max_entries_) {
          ForgetAllLocked();
          it = table_.end();
        }
        // A bless that raced this write may have added its ignore mark after the write: drop it — also when the
        // inode has no entry, since a sweep may have dropped that bless's entry already (once per write session).
        if (it == table_.end() || it->second.verdict == Verdict::Allowed) RemoveIgnoreMarkByHandle(ev.dev, ev.handle_type, ev.handle);
        if (it == table_.end()) it = table_.emplace(key, VerdictEntry{}).first;
        DropDenyOpenMarkLocked(it->second, key, -1);  // new content: no verdict refuses its opens
        it->second.verdict = Verdict::Dirty;
        budgets_.erase(key);
      } else if (!is_dir && (md->mask & (FAN_MODIFY | FAN_CLOSE_WRITE))) {
        if (!(md->mask & FAN_MODIFY) && it != table_.end() && it->second.verdict == Verdict::Denied) {
          // An open for write and a close that changed nothing must not lose a deny. Shared-mapping stores raise no
          // modify but do move mtime: keep the deny only while size and mtime are what they were when denied.
          if (path_fd < 0) path_fd = open_path_by_handle(fs->second.mount_fd, ev);
          struct stat st;
          if (path_fd >= 0 && fstat(path_fd, &st) == 0 && same_content_stamp(it->second, st)) {
            c_.close_unchanged++;
            close(path_fd);
            return;  // not news for JS either: its dirty machine would clear the deny tag
          }
        }
        // Stores through a shared mapping clear nothing in the kernel and raise no modify: an entry that is not
        // dirty at close-after-write may still carry its ignore mark. Drop it ourselves.
        bool was_dirty = it != table_.end() && it->second.verdict == Verdict::Dirty;
        if (!was_dirty) RemoveIgnoreMarkByHandle(ev.dev, ev.handle_type, ev.handle);
        if (it != table_.end()) {
          DropDenyOpenMarkLocked(it->second, key, -1);
          table_.erase(it);
        }
        budgets_.erase(key);
      } else if (md->mask & FAN_DELETE_SELF) {
        if (it != table_.end()) table_.erase(it);
        shared_maps_.erase(key);
      }
    }
    // A path for display, for the records that reach JS (a deleted file's stale handle has none).
    if (fs != filesystems_.end() && !ev.handle.empty()) {
      if (path_fd < 0) path_fd = open_path_by_handle(fs->second.mount_fd, ev);
      if (path_fd >= 0) {
        char link[40], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", path_fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0) ev.path.assign(target, n);
      }
    }
  }
  if (path_fd >= 0) close(path_fd);
  c_.change_forwarded++;
  batch.push_back(std::move(ev));
}

}  // namespace blessd
