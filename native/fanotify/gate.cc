// The gate's JS face: construction, answers, verdicts, stats and shutdown. The reader thread is in reader.cc,
// marks in marks.cc. See gate.h for who answers and who closes each fd.
#include "fanotify/gate.h"
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmath>
#include <cstring>
#include "common/errors.h"
#include "fanotify/compat.h"

namespace blessd {

void Gate::CleanupHook(void *arg) {
  auto *gate = static_cast<Gate *>(arg);
  gate->hook_registered_ = false;
  gate->Shutdown();
}

int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double number_option(Napi::Object o, const char *name, double fallback) {
  return o.Has(name) && !o.Get(name).IsUndefined() ? o.Get(name).As<Napi::Number>().DoubleValue() : fallback;
}

// A response JS computed (FAN_ALLOW, FAN_DENY, FAN_DENY_ERRNO(e)); refusals only where `refusal` is set.
static uint32_t response_option(Napi::Env env, Napi::Object o, const char *name, uint32_t fallback, bool refusal) {
  if (!o.Has(name) || o.Get(name).IsUndefined()) return fallback;
  uint32_t r = o.Get(name).As<Napi::Number>().Uint32Value();
  if ((r & 0xff) != FAN_DENY && (refusal || r != FAN_ALLOW))
    throw Napi::TypeError::New(env, std::string("gate: options.") + name + (refusal ? " must be a refusal (FAN_DENY or FAN_DENY_ERRNO)" : " must be a fanotify response"));
  return r;
}

Gate::Gate(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Gate>(info), own_pid_(getpid()) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "gate: options object required");
  Napi::Object o = info[0].As<Napi::Object>();
  if (!o.Get("onEvents").IsFunction()) throw Napi::TypeError::New(env, "gate: options.onEvents must be a function");
  double deadline_ms = number_option(o, "deadlineMs", 30000);
  if (!(deadline_ms >= 1 && deadline_ms <= 3600000)) throw Napi::RangeError::New(env, "gate: options.deadlineMs must be between 1 and 3600000");
  deadline_ns_ = (int64_t)(deadline_ms * 1e6);
  double access_ms = number_option(o, "accessDeadlineMs", deadline_ms);
  if (!(access_ms >= 1 && access_ms <= 3600000)) throw Napi::RangeError::New(env, "gate: options.accessDeadlineMs must be between 1 and 3600000");
  access_ns_ = (int64_t)(access_ms * 1e6);
  // Fail closed unless told otherwise: the deadline and the overload caps answer a retryable refusal (EAGAIN).
  overload_answer_ = response_option(env, o, "retryResponse", FAN_DENY_ERRNO(EAGAIN), true);
  uint32_t deny = response_option(env, o, "denyResponse", FAN_DENY, true);
  std::string da = o.Has("deadlineAnswer") && o.Get("deadlineAnswer").IsString() ? o.Get("deadlineAnswer").As<Napi::String>().Utf8Value() : "retry";
  if (da == "allow") deadline_answer_ = FAN_ALLOW;
  else if (da == "deny") deadline_answer_ = deny;
  else if (da == "retry") deadline_answer_ = overload_answer_;
  else throw Napi::TypeError::New(env, "gate: options.deadlineAnswer must be 'retry', 'deny' or 'allow'");
  double max_pending = number_option(o, "maxPending", 4096);
  if (!(max_pending >= 1 && max_pending <= 1e6)) throw Napi::RangeError::New(env, "gate: options.maxPending must be a positive integer");
  max_pending_ = (size_t)max_pending;
  double per_uid = number_option(o, "maxPendingPerUid", std::max(1.0, std::floor(max_pending / 4)));
  if (!(per_uid >= 1 && per_uid <= max_pending)) throw Napi::RangeError::New(env, "gate: options.maxPendingPerUid must be from 1 to maxPending");
  max_pending_per_uid_ = (size_t)per_uid;
  double allowed = number_option(o, "maxAllowedEntries", 65536);
  if (!(allowed >= 1 && allowed <= 1e7)) throw Napi::RangeError::New(env, "gate: options.maxAllowedEntries must be from 1 to 10000000");
  max_allowed_ = (size_t)allowed;
  sweep_at_ = max_allowed_;
  audit_ = o.Has("audit") && o.Get("audit").ToBoolean();
  bool changes = !o.Has("changes") || o.Get("changes").IsUndefined() || o.Get("changes").ToBoolean();

  // FAN_REPORT_TID: the event names the accessing thread, whose blocked syscall tells a write from a read
  // (proc/task.h); our own process is then recognised by thread group (IsOwn).
  unsigned int init_flags = FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS | FAN_REPORT_TID;
  if (audit_) init_flags |= FAN_ENABLE_AUDIT;
  gate_fd_ = fanotify_init(init_flags, O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NOATIME);
  if (gate_fd_ < 0) throw errno_error(env, errno, "fanotify_init(gate group)");
  if (changes) {
    // boundedChangeQueue: the kernel's default queue limit instead of an unlimited one. Only for tests of overflow
    // handling; an overflowing change group loses dirty notices (tags still protect themselves by their stamps).
    bool bounded = o.Has("boundedChangeQueue") && o.Get("boundedChangeQueue").ToBoolean();
    change_fd_ = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME_TARGET | FAN_CLOEXEC | FAN_NONBLOCK | (bounded ? 0 : FAN_UNLIMITED_QUEUE) | FAN_UNLIMITED_MARKS, O_RDONLY | O_CLOEXEC);
    if (change_fd_ < 0) {
      int e = errno;
      close(gate_fd_);
      throw errno_error(env, e, "fanotify_init(change group)");
    }
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

  if (o.Has("exemptPids") && o.Get("exemptPids").IsArray()) {
    auto a = o.Get("exemptPids").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) exempt_pids_.insert(a.Get(i).As<Napi::Number>().Int32Value());
  }
  if (o.Has("exemptUids") && o.Get("exemptUids").IsArray()) {
    auto a = o.Get("exemptUids").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) exempt_uids_.insert(a.Get(i).As<Napi::Number>().Int64Value());
  }

  tsfn_ = Napi::ThreadSafeFunction::New(env, o.Get("onEvents").As<Napi::Function>(), "blessd-gate", 0, 1);
  LaneRegister();
  thread_ = std::thread([this] { Run(); });
  answer_thread_ = std::thread([this] { RunAnswers(); });
  unmark_thread_ = std::thread([this] { RunUnmark(); });
  StartFlush(env);
  // If the process tears down without close(), still answer everything and join the thread.
  napi_add_env_cleanup_hook(env, CleanupHook, this);
  hook_registered_ = true;
}

Gate::~Gate() {
  Shutdown();
  if (hook_registered_) napi_remove_env_cleanup_hook(Env(), CleanupHook, this);
}

void Gate::WriteResponse(int fd, uint32_t response) {
  // With audit on, every answer is audit-logged by the kernel; without FAN_ENABLE_AUDIT the bit is an error.
  if (audit_) response |= FAN_AUDIT;
  else response &= ~FAN_AUDIT;
  struct fanotify_response r = {fd, response};
  if (write(gate_fd_, &r, sizeof r) == (ssize_t)sizeof r) return;
  if (errno == EINVAL && (response & ~(uint32_t)FAN_AUDIT) != FAN_ALLOW && (response & 0xff) == FAN_DENY) {
    // A deny errno the kernel does not accept (or an old kernel): a plain deny still refuses.
    r.response = FAN_DENY;
    if (write(gate_fd_, &r, sizeof r) == (ssize_t)sizeof r) return;
  }
  if (errno == ENOENT) c_.late++;
}

// Called with mu_ held. Writes the one answer a Pending record gets.
bool Gate::AnswerLocked(uint64_t id, Pending &p, uint32_t response) {
  if (p.answered) return false;
  WriteResponse(p.fd, response);
  p.answered = true;
  return true;
}

// answer(id, response, keepFd): claimed here, under mu_, and counted; written by the answer thread (answers.cc),
// which then closes the fd. keepFd (JS takes the fd) is answered here and now: the fd must not close before the write.
Napi::Value Gate::Answer(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint64_t id = (uint64_t)info[0].As<Napi::Number>().Int64Value();
  uint32_t response = info[1].As<Napi::Number>().Uint32Value();
  bool keep_fd = info.Length() > 2 && info[2].ToBoolean();
  int fd_to_close = -1, fd_to_write = -1;
  bool answered_now = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end() || it->second.queued) return Napi::Boolean::New(env, false);
    Pending &p = it->second;
    if (!p.answered) {
      answered_now = true;
      // Counted before the answer is written: whoever the answer wakes may read the stats at once.
      c_.by_js++;
      c_.latency[latency_bucket((now_ns() - p.forwarded_ns) / 1000)]++;
      // JS answered in time: this access's wait is over, and its deadline answer (if any) no longer stands.
      budgets_.erase(p.key);
      auto u = pending_by_uid_.find(p.uid);
      if (u != pending_by_uid_.end() && --u->second == 0) pending_by_uid_.erase(u);
      if (keep_fd) {
        AnswerLocked(id, p, response);
        UnindexPendingLocked(id, p.key);
        pending_.erase(it);
      } else {
        p.answered = p.queued = true;  // nobody else answers it now; the answer thread writes, closes and drops it
        fd_to_write = p.fd;
      }
    } else {  // the deadline answered it and already settled its budget and its uid's count
      if (!keep_fd) fd_to_close = p.fd;
      UnindexPendingLocked(id, p.key);
      pending_.erase(it);
    }
  }
  if (fd_to_write >= 0) QueueWork({id, fd_to_write, response});
  if (fd_to_close >= 0) close(fd_to_close);
  return Napi::Boolean::New(env, answered_now);
}

// release(fd): JS is done with a 'settled' record's fd.
Napi::Value Gate::Release(const Napi::CallbackInfo &info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_notices_ > 0) held_notices_--;
  }
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

bool key_of_fd(int fd, InodeKey &key) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  key.dev = st.st_dev;
  key.ino = st.st_ino;
  return true;
}

bool generation_of_fd(int fd, uint32_t &gen) {
  unsigned int g = 0;
  if (ioctl(fd, FS_IOC_GETVERSION, &g) != 0) return false;
  gen = g;
  return true;
}

Napi::Value Gate::Bless(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  InodeKey key;
  if (!key_of_fd(fd, key)) throw errno_error(env, errno, "fstat", "fd " + std::to_string(fd));
  bool marked = false;
  BlessFd(fd, marked, JudgedStamp{});  // the same work as a queued bless (answers.cc), here and now
  return Napi::Boolean::New(env, marked);
}

VerdictEntry Gate::EntryOf(int fd, Verdict verdict, uint32_t response, const struct stat *known, uint32_t known_gen) {
  VerdictEntry e;
  e.verdict = verdict;
  e.response = response;
  struct stat st;
  if (known) {
    // Read a moment ago by the caller (the tag settler), after the tags: the file as it was judged.
    e.gen_known = known_gen != 0 || generation_of_fd(fd, e.gen);
    if (known_gen != 0) e.gen = known_gen;
    take_stamp(e, *known);
  } else {
    e.gen_known = generation_of_fd(fd, e.gen);
    if (fstat(fd, &st) == 0) take_stamp(e, st);
  }
  if (verdict != Verdict::Dirty) {  // Allowed: removes the ignore mark later; Denied: the deny mark
    char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    auto *fh = reinterpret_cast<struct file_handle *>(storage);
    fh->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) == 0) {
      e.handle_type = fh->handle_type;
      e.handle.assign(reinterpret_cast<char *>(fh->f_handle), fh->handle_bytes);
    }
  }
  return e;
}

void Gate::RememberLocked(const InodeKey &key, VerdictEntry &&e) {
  if (table_.size() >= sweep_at_) SweepTableLocked();
  if (table_.size() >= max_entries_) ForgetAllLocked();
  auto it = table_.find(key);
  if (it != table_.end()) {
    // A deny replaced by another verdict drops its open mark; a deny again keeps it (the new entry says so).
    if (e.open_marked) it->second.open_marked = false;
    DropDenyOpenMarkLocked(it->second, key, -1);
    it->second = std::move(e);
  } else {
    table_.emplace(key, std::move(e));
  }
  budgets_.erase(key);  // a verdict ends the access budget of a deadline answer
}

// The table must not grow with every file ever blessed (a million files would cost ~150 MB here). An Allowed entry
// is only a second copy of what the kernel's ignore mark already says — as long as the mark silences the inode, the
// entry is never asked. So a sweep drops the Allowed entries that no event has asked since the last sweep (second
// chance: it clears the `hit` of the others); a dropped inode whose mark is gone (evicted with the inode, cleared by
// a write) comes back as a miss, which its tags settle again or JS judges. Denied and Dirty entries are never swept:
// a deny must hold even where no tag could be written, and a dirty inode must not be settled by tags that are about
// to be cleared. Called with mu_ held.
void Gate::SweepTableLocked() {
  size_t before = table_.size();
  for (auto it = table_.begin(); it != table_.end();) {
    if (it->second.verdict == Verdict::Allowed && !it->second.hit) {
      it = table_.erase(it);
    } else {
      it->second.hit = false;
      ++it;
    }
  }
  c_.swept += before - table_.size();
  c_.sweeps++;
  // Next sweep when the table has grown by the cap again: O(1) per insert, whatever the table keeps.
  sweep_at_ = table_.size() + max_allowed_;
}

Napi::Value Gate::Condemn(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t response = info[1].As<Napi::Number>().Uint32Value();
  // A deny entry answers with this: anything but a deny (FAN_ALLOW is 1, the value of EPERM) would serve the file.
  if ((response & 0xff) != FAN_DENY)
    throw Napi::RangeError::New(env, "gate: condemn(fd, response): response must be a deny (FAN_DENY or FAN_DENY_ERRNO(e)), not " + std::to_string(response));
  InodeKey key;
  if (!key_of_fd(fd, key)) throw errno_error(env, errno, "fstat", "fd " + std::to_string(fd));
  VerdictEntry e = EntryOf(fd, Verdict::Denied, response);
  // A denied file must keep asking: drop any ignore mark it may still carry.
  RemoveIgnoreMark(fd, nullptr);
  std::lock_guard<std::mutex> lock(mu_);
  BumpSeqLocked(key);
  e.open_marked = AddDenyOpenMarkLocked(fd, key);
  RememberLocked(key, std::move(e));
  return env.Undefined();
}

// forget(fd): a dirty inode machine's (src/inode/machine.ts goDirty), which only ever follows a change record. As
// for forgetInode below, the change sequence is not bumped here: the reader thread bumped it when it read that
// record, and a judgement whose first event came before it is refused by that bump already. A second bump, made
// when a loaded main thread gets to the record only after a later access was read, refused the worker's
// conclusion of that access (which judged the new content): one rescan and one store lookup too many (lane.cc).
Napi::Value Gate::Forget(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  InodeKey key;
  if (!key_of_fd(fd, key)) throw errno_error(env, errno, "fstat", "fd " + std::to_string(fd));
  RemoveIgnoreMark(fd, nullptr);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = table_.find(key);
  if (it != table_.end()) {
    DropDenyOpenMarkLocked(it->second, key, fd);
    table_.erase(it);
  }
  budgets_.erase(key);
  return env.Undefined();
}

// forgetInode(dev, ino): drop a cached verdict known only by identity (a change event for a file JS holds no fd of).
// The change sequence is not bumped here: the reader thread bumped it when it read that change record. A bump now
// would also refuse the lane's conclusion of an access read after that record — which judged the new content — when
// JS, behind under load, gets to the record only after the access was read: one needless rescan (lane.cc).
Napi::Value Gate::ForgetInode(const Napi::CallbackInfo &info) {
  InodeKey key{(uint64_t)info[0].As<Napi::Number>().Int64Value(), (uint64_t)info[1].As<Napi::Number>().Int64Value()};
  std::lock_guard<std::mutex> lock(mu_);
  budgets_.erase(key);
  auto it = table_.find(key);
  if (it == table_.end()) return Napi::Boolean::New(info.Env(), false);
  if (it->second.verdict == Verdict::Allowed) RemoveIgnoreMarkByHandle(key.dev, it->second.handle_type, it->second.handle);
  DropDenyOpenMarkLocked(it->second, key, -1);
  table_.erase(it);
  return Napi::Boolean::New(info.Env(), true);
}

// A shared writable mapping found in /proc/<pid>/maps by the sweep (map_sweep.cc): `path` is its
// /proc/<pid>/map_files/<range> link, which stat and fanotify_mark resolve to the inode without opening it (no
// event, and no open of a file a user controls). From now on the inode is judged at every access, as one whose
// mmap the reader thread saw, and its ignore mark goes. 1: newly followed; 0: followed already; -1: not a regular
// file, gone, or the set is full. Any thread (takes mu_).
int Gate::FlagSharedMapPath(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  InodeKey key{(uint64_t)st.st_dev, (uint64_t)st.st_ino};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = shared_maps_.find(key);
    if (it != shared_maps_.end()) {
      it->second = now_ns();  // still mapped: the prune after this sweep keeps it
      return 0;
    }
    if (shared_maps_.size() >= kMaxSharedMaps) {
      c_.shared_maps_untracked++;
      return -1;
    }
    shared_maps_.emplace(key, now_ns());
    BumpSeqLocked(key);
    BumpContentSeqLocked(key);
    c_.shared_maps_swept++;
    auto entry = table_.find(key);
    if (entry != table_.end()) {
      DropDenyOpenMarkLocked(entry->second, key, -1);
      table_.erase(entry);
    }
  }
  RemoveIgnoreMark(AT_FDCWD, path);
  return 1;
}

// The end of a sweep that began at `started` (now_ns()): inodes neither found by it nor seen mapped since it began
// are no longer mapped shared-writable; their accesses are trusted again once judged. Returns how many stay followed.
size_t Gate::PruneSharedMapsBefore(int64_t started) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = shared_maps_.begin(); it != shared_maps_.end();) {
    if (it->second < started) it = shared_maps_.erase(it);
    else ++it;
  }
  return shared_maps_.size();
}

// forgetAll(): the table at once; the kernel's marks on the unmark thread. Returns this forget's number: the marks
// are cleared once forgetsDone() reaches it.
Napi::Value Gate::ForgetAll(const Napi::CallbackInfo &info) {
  uint64_t ask;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ForgetAllLocked(/*walk_after=*/true);  // what the walk settled is gone too: settled again, ahead of the accesses
    ask = c_.forgets_asked.load();
  }
  return Napi::Number::New(info.Env(), (double)ask);
}

Napi::Value Gate::ForgetsDone(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), (double)c_.forgets_done.load(std::memory_order_acquire));
}

Napi::Value Gate::SetExempt(const Napi::CallbackInfo &info) {
  std::lock_guard<std::mutex> lock(mu_);
  exempt_pids_.clear();
  exempt_uids_.clear();
  auto pids = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < pids.Length(); i++) exempt_pids_.insert(pids.Get(i).As<Napi::Number>().Int32Value());
  if (info.Length() > 1 && info[1].IsArray()) {
    auto uids = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < uids.Length(); i++) exempt_uids_.insert(uids.Get(i).As<Napi::Number>().Int64Value());
  }
  return info.Env().Undefined();
}

Napi::Value Gate::Stats(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Object ev = Napi::Object::New(env);
  ev.Set("openPerm", (double)c_.open_perm);
  ev.Set("execPerm", (double)c_.exec_perm);
  ev.Set("preAccess", (double)c_.pre_access);
  ev.Set("openNotice", (double)c_.open_notice);
  ev.Set("change", (double)c_.change);
  o.Set("events", ev);
  o.Set("fastOwn", (double)c_.fast_own);
  o.Set("fastExempt", (double)c_.fast_exempt);
  o.Set("fastAllowed", (double)c_.fast_allowed);
  o.Set("fastDenied", (double)c_.fast_denied);
  o.Set("fastWriter", (double)c_.fast_writer);
  o.Set("fastTagsAllowed", (double)c_.tags_allowed);
  o.Set("fastTagsDenied", (double)c_.tags_denied);
  o.Set("openAllowed", (double)c_.open_allowed);
  o.Set("openRefused", (double)c_.open_refused);
  o.Set("staleAllowed", (double)c_.stale_allowed);
  o.Set("sharedWriteMaps", (double)c_.shared_write_maps);
  o.Set("sharedMapRejudged", (double)c_.shared_map_rejudged);
  o.Set("sharedMapsUntracked", (double)c_.shared_maps_untracked);
  o.Set("sharedMapsSwept", (double)c_.shared_maps_swept);
  o.Set("sharedMapSweeps", (double)c_.map_sweeps);
  o.Set("sharedMapSweepProcesses", (double)c_.map_sweep_processes);
  o.Set("sharedMapSweepMappings", (double)c_.map_sweep_mappings);
  o.Set("sharedMapSweepMs", (double)c_.map_sweep_us / 1000.0);
  o.Set("closeUnchanged", (double)c_.close_unchanged);
  o.Set("forwarded", (double)c_.forwarded);
  o.Set("answeredByJs", (double)c_.by_js);
  o.Set("answeredByDeadline", (double)c_.by_deadline);
  o.Set("answeredOverload", (double)c_.overload);
  o.Set("answeredUidShare", (double)c_.uid_share);
  o.Set("answeredAccessDeadline", (double)c_.by_access_deadline);
  o.Set("deadlineKeptDeny", (double)c_.deadline_kept_deny);
  o.Set("deadlineStops", (double)c_.stops_seen);
  o.Set("deadlineStoppedMs", (double)c_.stopped_ms);
  o.Set("fallbacksSuppressed", (double)c_.fallbacks_suppressed);
  o.Set("answeredAtClose", (double)c_.at_close);
  o.Set("lateAnswers", (double)c_.late);
  o.Set("heldForSyscall", (double)c_.held);
  o.Set("heldExpired", (double)c_.held_expired);
  o.Set("overflows", (double)c_.overflows);
  o.Set("coalesced", (double)c_.coalesced);
  o.Set("changeForwarded", (double)c_.change_forwarded);
  o.Set("noticesDropped", (double)c_.notices_dropped);
  o.Set("readErrors", (double)c_.read_errors);
  o.Set("ignoreMarksAdded", (double)c_.marks_added);
  o.Set("ignoreMarksRemoved", (double)c_.marks_removed);
  o.Set("ignoreMarksRefused", (double)c_.marks_refused);
  o.Set("ignoreMarkFlushes", (double)c_.mark_flushes);
  o.Set("marksForgotten", (double)c_.marks_forgotten);
  o.Set("forgetsAsked", (double)c_.forgets_asked);
  o.Set("forgetsDone", (double)c_.forgets_done);
  o.Set("denyMarksAdded", (double)c_.deny_marks_added);
  o.Set("denyMarksRemoved", (double)c_.deny_marks_removed);
  o.Set("denyMarksRefused", (double)c_.deny_marks_refused);
  o.Set("blessesStale", (double)c_.blesses_stale);
  o.Set("staleAllowsRefused", (double)c_.stale_allows_refused);
  o.Set("staleDrains", (double)c_.stale_drains);
  o.Set("staleDrainTimeouts", (double)c_.stale_drain_timeouts);
  o.Set("laneConcluded", (double)c_.lane_concluded);
  o.Set("laneAnswered", (double)c_.lane_answered);
  o.Set("laneDeclined", (double)c_.lane_declined);
  o.Set("laneQueued", (double)c_.lane_queued);
  o.Set("laneJoined", (double)c_.lane_joined);
  o.Set("laneHanded", (double)c_.lane_handed);
  o.Set("laneRefused", (double)c_.lane_refused);
  o.Set("laneJobsConcluded", (double)c_.lane_jobs_concluded);
  o.Set("laneWakes", (double)c_.lane_wakes);
  o.Set("laneBatches", (double)c_.lane_batches);
  o.Set("laneLate", (double)c_.lane_late);
  o.Set("laneOrphaned", (double)c_.lane_orphaned);
  o.Set("verdictTableSwept", (double)c_.swept);
  o.Set("verdictTableSweeps", (double)c_.sweeps);
  Napi::Object trees = Napi::Object::New(env);
  trees.Set("fastOutside", (double)c_.fast_outside);
  trees.Set("checks", (double)c_.tree_checks);
  trees.Set("checkNs", (double)c_.tree_check_ns);
  trees.Set("outside", (double)c_.tree_outside);
  trees.Set("changesDropped", (double)c_.tree_changes_dropped);
  trees.Set("forgetOnMove", (double)c_.tree_forget_moves);
  trees.Set("relinkedAtOpen", (double)c_.tree_relinked);
  trees.Set("checkpoints", (double)c_.tree_checkpoints);
  o.Set("trees", trees);
  o.Set("settleWalk", SettleWalkStats(env));
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t waiting = 0;
    for (auto &kv : pending_) waiting += kv.second.answered ? 0 : 1;
    o.Set("pendingNow", (double)waiting);
    o.Set("heldFds", (double)(pending_.size() + held_notices_));
    o.Set("verdictTableSize", (double)table_.size());
  }
  Napi::Array lat = Napi::Array::New(env, kLatencyBuckets);
  for (uint32_t i = 0; i < kLatencyBuckets; i++) lat.Set(i, (double)c_.latency[i]);
  o.Set("latencyUs", lat);
  return o;
}

// Stop the thread, answer everything still waiting (allow: the kernel would allow it anyway once the group is
// gone), close every fd we own, close the groups. Safe to call twice and from the env cleanup hook.
void Gate::Shutdown() {
  if (closed_) return;
  closed_ = true;
  LaneUnregister();  // first: no worker concludes from here on, and those under way are done
  StopSettleWalk();  // first: its own opens may wait for the reader thread
  StopMapSweep();    // before the table and the marks go (it flags inodes in both)
  stopping_ = true;
  {
    std::lock_guard<std::mutex> lock(drain_mu_);  // a drain the answer thread waits on ends now, undone (answers.cc)
  }
  drain_cv_.notify_all();
  uint64_t one = 1;
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof one) < 0) { /* the thread also checks stopping_ each wake */ }
  if (thread_.joinable()) thread_.join();
  StopAnswers();  // JS's answers first, as JS gave them; then the deadline's answer for the rest
  StopUnmark();   // before the group closes (its fd is the unmark thread's too)
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto &kv : pending_) {
      // Not judged: what a deadline answers (fail closed by default: a retryable EAGAIN; never allow for an inode
      // the table holds as denied). Once the group is closed the kernel passes every access, so the retry then
      // goes through ungated — but not on an answer of ours.
      if (AnswerLocked(kv.first, kv.second, DeadlineAnswerLocked(kv.second.key))) c_.at_close++;
      close(kv.second.fd);
    }
    pending_.clear();
    pending_keys_.clear();
    LaneQueueShutdownLocked();  // the queued jobs' own fds; their events were answered just above
    deadlines_ = {};
    budgets_.clear();
    pending_by_uid_.clear();
    for (auto &kv : filesystems_) close(kv.second.mount_fd);
    filesystems_.clear();
    mount_fd_by_dev_.clear();
    outside_.clear();
  }
  CloseTrees();
  if (gate_fd_ >= 0) close(gate_fd_);
  if (change_fd_ >= 0) close(change_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  gate_fd_ = change_fd_ = wake_fd_ = -1;
  tsfn_.Release();
}

Napi::Value Gate::Close(const Napi::CallbackInfo &info) {
  Shutdown();
  if (hook_registered_) {
    napi_remove_env_cleanup_hook(info.Env(), CleanupHook, this);
    hook_registered_ = false;
  }
  return info.Env().Undefined();
}

// The one place events cross into JS. On the main thread; `batch` was built by the reader thread.
static Napi::Value to_js(Napi::Env env, const OutEvent &e) {
  static const char *kinds[] = {"perm", "change", "overflow", "settled", "fallback"};
  static const char *whys[] = {"deadline", "access-deadline", "overload", "uid-share", "queue-per-uid"};
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", kinds[(int)e.kind]);
  o.Set("id", (double)e.id);
  o.Set("fd", e.fd);
  o.Set("mask", (double)e.mask);
  o.Set("pid", e.pid);
  o.Set("dev", (double)e.dev);
  o.Set("ino", (double)e.ino);
  o.Set("gen", (double)e.gen);
  o.Set("offset", (double)e.offset);
  o.Set("count", (double)e.count);
  o.Set("tid", e.tid);
  if (e.uid >= 0) o.Set("uid", (double)e.uid);
  if (e.kind == EventKind::Perm) o.Set("seq", (double)e.seq);
  if (e.kind == EventKind::Fallback) {
    o.Set("why", whys[(int)e.why]);
    o.Set("response", (double)e.response);
    o.Set("suppressed", (double)e.suppressed);
    if (!e.path.empty()) o.Set("path", e.path);
    if (!e.exe.empty()) o.Set("exe", e.exe);
  }
  if (e.kind == EventKind::Change) {
    o.Set("fsid", e.fsid);
    o.Set("handleType", e.handle_type);
    o.Set("handle", Napi::Buffer<char>::Copy(env, e.handle.data(), e.handle.size()));
    if (!e.dir_handle.empty()) o.Set("dirHandle", Napi::Buffer<char>::Copy(env, e.dir_handle.data(), e.dir_handle.size()));
    if (!e.name.empty()) o.Set("name", e.name);
    if (!e.path.empty()) o.Set("path", e.path);
    o.Set("resolved", e.resolved);
  }
  return o;
}

void Gate::Deliver(std::vector<OutEvent> *batch) {
  const uint32_t lane = lane_id_;
  auto call = [lane](Napi::Env env, Napi::Function fn, std::vector<OutEvent> *b) {
    std::unique_ptr<std::vector<OutEvent>> owned(b);
    if (env == nullptr) return;  // torn down: Shutdown answers the pending ones
    Napi::Array arr = Napi::Array::New(env, b->size());
    for (size_t i = 0; i < b->size(); i++) arr.Set(i, to_js(env, (*b)[i]));
    // An exception here is a bug in the daemon: let it surface as an uncaught exception, never swallow it.
    fn.Call({arr});
    // JS has dealt with every event of the batch (onEvents is synchronous): those still unanswered are waiters of
    // an inode now, which a worker's conclusion may answer (lane.cc). Not before: JS still uses their fds.
    MarkDelivered(lane, *b);
  };
  if (tsfn_.NonBlockingCall(batch, call) != napi_ok) {
    // JS is going away: answer what we forwarded and close what JS will never see.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto &e : *batch) {
      if (e.kind == EventKind::Perm) {
        auto it = pending_.find(e.id);
        if (it != pending_.end() && !it->second.queued) {
          AnswerLocked(e.id, it->second, DeadlineAnswerLocked(it->second.key));  // not judged: as at close
          close(it->second.fd);
          UnindexPendingLocked(e.id, it->second.key);
          pending_.erase(it);
        }
      } else if (e.kind == EventKind::Settled) {
        close(e.fd);
        if (held_notices_ > 0) held_notices_--;
      }
    }
    delete batch;
  }
}

Napi::Function Gate::Class(Napi::Env env) {
  return DefineClass(env, "Gate",
                     {
                         InstanceMethod<&Gate::MarkFilesystem>("markFilesystem"),
                         InstanceMethod<&Gate::MarkMount>("markMount"),
                         InstanceMethod<&Gate::MarkTree>("markTree"),
                         InstanceMethod<&Gate::UnmarkTree>("unmarkTree"),
                         InstanceMethod<&Gate::UnmarkFilesystem>("unmarkFilesystem"),
                         InstanceMethod<&Gate::UnmarkMount>("unmarkMount"),
                         InstanceMethod<&Gate::Answer>("answer"),
                         InstanceMethod<&Gate::Release>("release"),
                         InstanceMethod<&Gate::Bless>("bless"),
                         InstanceMethod<&Gate::QueueBless>("queueBless"),
                         InstanceMethod<&Gate::Condemn>("condemn"),
                         InstanceMethod<&Gate::Forget>("forget"),
                         InstanceMethod<&Gate::ForgetAll>("forgetAll"),
                         InstanceMethod<&Gate::ForgetsDone>("forgetsDone"),
                         InstanceMethod<&Gate::ForgetInode>("forgetInode"),
                         InstanceMethod<&Gate::SharedMapSweep>("sharedMapSweep"),
                         InstanceMethod<&Gate::SetExempt>("setExempt"),
                         InstanceMethod<&Gate::Stats>("stats"),
                         InstanceMethod<&Gate::Close>("close"),
                         InstanceMethod<&Gate::SetTagPolicy>("setTagPolicy"),
                         InstanceMethod<&Gate::SettleWalk>("settleWalk"),
                         InstanceMethod<&Gate::LaneId>("laneId"),
                         InstanceMethod<&Gate::SetLane>("setLane"),
                         InstanceMethod<&Gate::SetLaneQueue>("setLaneQueue"),
                         InstanceMethod<&Gate::LaneClaim>("laneClaim"),
                         InstanceMethod<&Gate::LaneRelease>("laneRelease"),
                     });
}

void InitGate(Napi::Env env, Napi::Object exports) {
  exports.Set("Gate", Gate::Class(env));
  InitLane(env, exports);
  InitLaneQueue(env, exports);
}

}  // namespace blessd
