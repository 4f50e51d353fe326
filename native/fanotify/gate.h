// Overview — the fanotify gate.
//
// Owns two fanotify groups: the gate group (permission events, each with an fd the kernel opened for us) and the
// change group (notifications with file handles). A reader thread polls both plus a wake-up eventfd; it answers
// alone what it can (our own process, exempt pids/uids, inodes in the verdict table, writers' own writes, opens in
// read mode — a denied inode's, refused, and a tree checkpoint's —, accesses whose deadline already passed) and hands the rest to JS in batches through one
// ThreadSafeFunction. Every answer that is not a verdict (deadline, overload, a uid past its share) is also sent to
// JS as a small 'fallback' record, rate-limited here, so that it is logged.
//
// Who answers and who closes:
//  - A forwarded permission event is a Pending record. Exactly one answer is given to it, decided under `mu_`: by JS
//    (answer()), by the deadline on the reader thread, or by close(). Its fd stays open until
//    it is answered AND JS released it (answer() releases unless keepFd, in which case JS owns and closes the fd).
//    JS's answers are claimed under `mu_` (Pending::queued: nobody else may answer it now) and written by the answer
//    thread (answers.cc), which also closes the fd and drops the record; the main thread makes no syscall for them.
//    close() lets that thread write everything queued before it answers the rest allow.
//  - A pool worker may conclude a cold file allow itself (lane.cc): it claims the inode's events JS holds
//    (Pending::delivered) under `mu_` like answer() does, writes them from its own thread, drops and closes them.
//    Shutdown unregisters the lane and waits for conclusions under way before anything else closes.
//  - Stage B (lane_queue.cc): a cold event the reader queues natively is a Pending record with `lane` set and is
//    never delivered to JS; its job's worker claims and writes it like lane.cc does, or hands it to JS (then it is
//    delivered as a 'perm' record like any other). The deadline answers it as any pending event; its fd and record
//    then go when the job ends or at the hand-over. The job's own dup'd fd is the worker's once taken.
//  - A 'settled' record's fd is JS's from delivery on; JS gives it back with release(fd) (so the gate can count held
//    fds). No open notice reaches JS: read mode's filesystem mark raises no open event, and the opens a deny mark or a
//    tree checkpoint raise are answered on the reader thread.
//  - Events refused for overload (the global cap, or one uid's share) are answered and closed on the reader thread.
//  - An event set aside while its accessor was still running (HeldEvent) stays the reader thread's: answered and
//    closed there when asked again, or with allow when the thread stops (AnswerHeld), like everything pending.
//  - Fast-path events are answered and closed on the reader thread before anything else happens: answering first,
//    because whatever we would do next (log, call JS) may be what the blocked process holds up.
// The reader thread never opens a file on a guarded filesystem: its own open would wait for itself.
#pragma once
#include <fcntl.h>  // struct file_handle
#include <napi.h>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>
#include "fanotify/verdict_table.h"
#include "tags/settle.h"

namespace blessd {

// Settled: a permission event the reader answered from the file's tags (a deny), handed to JS to log; JS releases fd.
// Fallback: an answer that was not a verdict (deadline, overload...), for JS to log.
enum class EventKind : uint8_t { Perm, Change, Overflow, Settled, Fallback };

struct GateTagPolicy;

// Why an answer was not a verdict (a 'fallback' record for JS to log).
enum class FallbackWhy : uint8_t { Deadline, AccessDeadline, Overload, UidShare, QueuePerUid, kCount };

// One record for JS, built on the reader thread, turned into a JS object in Gate::Deliver.
struct OutEvent {
  EventKind kind;
  uint64_t id = 0;
  int fd = -1;
  uint64_t mask = 0;
  int32_t pid = 0;
  uint64_t dev = 0, ino = 0;
  uint32_t gen = 0;
  int64_t offset = -1, count = -1;
  int32_t tid = 0;
  int64_t uid = -1;
  // perm records: the inode's change sequence when forwarded (lane.cc): a worker's conclusion holds only if unmoved
  uint32_t seq = 0;
  // fallback records: why, the answer given, how many like it were not reported since the last one
  FallbackWhy why = FallbackWhy::Deadline;
  uint32_t response = 0;
  uint64_t suppressed = 0;
  std::string exe;
  // change records
  std::string fsid, handle, dir_handle, name, path;
  int handle_type = 0;
  bool resolved = false;
};

struct Pending {
  int fd;
  int64_t forwarded_ns;
  InodeKey key;
  uint32_t uid;
  int32_t tid;
  uint64_t mask;
  bool answered = false;
  bool queued = false;  // answered by JS, not yet written: the answer thread owns the fd and drops the record
  bool delivered = false;  // handed to JS (Deliver): JS holds it as a waiter, so a worker's conclusion may answer it
  bool stale_bless = false;  // a queued bless of its inode found the file changed: an allow for it is not written
  uint32_t content_seq = 0;  // its inode's content sequence when it was read (answers.cc: a stale bless's check)
  bool lane = false;  // waits in the native lane queue (lane_queue.cc): a worker's job answers it, or hands it to JS
  bool js = false;    // went (or was handed) to JS: counted in js_holds_ until it is dropped
};

// lane_queue.cc: one cold inode waiting in the native lane for a pool worker (stage B). Its events stay in pending_
// (the deadline, overload and shutdown answers cover them); `events` keeps what JS gets if the job is handed over.
struct LaneJob {
  uint64_t ticket = 0;
  int fd = -1;          // our own dup of the first event's fd: the worker scans through it and closes it
  uint32_t seq = 0;     // the inode's change sequence at the first event
  uint32_t uid = 0;     // whose turn it is queued in (the first event's accessor)
  bool taken = false;   // a worker has it (and its fd)
  uint32_t worker = 0;  // which one (lane_queue.cc LaneWorkerGone: a worker that goes away hands its jobs to JS)
  bool claimed = false; // JS started a judgement of its own meanwhile (laneClaim): never concluded here
  std::vector<OutEvent> events;
};

// One access's wait budget for an inode whose judgement is pending (the deadline bounds an access, not an event).
// Starts with the first forwarded event; every later event of the inode waits at most until start + access wait.
// Once the deadline answered, later events get the same answer at once, until JS gives a verdict (bless, condemn,
// forget, an answer) or one more access wait has passed (then the next event waits again: JS may judge now).
struct AccessBudget {
  int64_t start_ns = 0;
  int64_t expired_ns = 0;  // 0 while not expired
  uint32_t response = 0;
  uint32_t live = 0;       // forwarded events of this inode still unanswered
};

// At most this many fallback records per second per reason reach JS; the rest are counted in the next one.
constexpr uint32_t kFallbackRecordsPerSecond = 20;

struct FsInfo {
  uint64_t dev;
  int mount_fd;  // a directory of the filesystem, for open_by_handle_at
};

// Answer latency of forwarded events in µs, HDR-style: exact below 8 µs, then 8 buckets per power of two (≤ 12.5%
// error), up to 2^31 µs. src/gate/latency.ts reads it back.
constexpr uint32_t kLatencyBuckets = 8 + 29 * 8;
inline uint32_t latency_bucket(int64_t us) {
  if (us < 8) return us < 0 ? 0 : (uint32_t)us;
  int e = 63 - __builtin_clzll((uint64_t)us);
  if (e > 31) return kLatencyBuckets - 1;
  return 8 + (e - 3) * 8 + (uint32_t)((us >> (e - 3)) & 7);
}

struct Counters {
  std::atomic<uint64_t> open_perm{0}, exec_perm{0}, pre_access{0}, open_notice{0}, change{0};
  std::atomic<uint64_t> fast_own{0}, fast_exempt{0}, fast_allowed{0}, fast_denied{0}, fast_writer{0};
  std::atomic<uint64_t> open_allowed{0}, open_refused{0}, stale_allowed{0}, close_unchanged{0};
  std::atomic<uint64_t> forwarded{0}, by_js{0}, by_deadline{0}, by_access_deadline{0}, overload{0}, uid_share{0};
  std::atomic<uint64_t> deadline_kept_deny{0}, at_close{0}, late{0}, fallbacks_suppressed{0}, held{0}, held_expired{0};
  std::atomic<uint64_t> stops_seen{0}, stopped_ms{0};  // the reader found itself stopped (SIGSTOP, a stall): deadlines moved
  std::atomic<uint64_t> overflows{0}, coalesced{0}, change_forwarded{0}, notices_dropped{0}, read_errors{0};
  std::atomic<uint64_t> marks_added{0}, marks_removed{0}, marks_refused{0}, mark_flushes{0}, swept{0}, sweeps{0};
  std::atomic<uint64_t> deny_marks_added{0}, deny_marks_removed{0}, deny_marks_refused{0};
  std::atomic<uint64_t> blesses_stale{0};    // a bless whose file changed since its judgement began: not cached
  std::atomic<uint64_t> stale_allows_refused{0};  // allows queued behind such a bless, written as the retry answer
  // Blesses stale by ctime alone, for which the answer thread had the reader drain the change group, and those
  // drains that did not end in time (their allows refused: fail closed).
  std::atomic<uint64_t> stale_drains{0}, stale_drain_timeouts{0};
  std::atomic<uint64_t> marks_forgotten{0};  // inode marks whose ignore and deny bits a forget-all removed in place
  // Forget-alls asked (incremented under unmark_mu_: the unmark thread waits on it), and those whose marks are cleared.
  std::atomic<uint64_t> forgets_asked{0}, forgets_done{0};
  std::atomic<uint64_t> shared_write_maps{0}, shared_map_rejudged{0}, shared_maps_untracked{0}, shared_maps_swept{0};
  std::atomic<uint64_t> map_sweeps{0}, map_sweep_processes{0}, map_sweep_mappings{0}, map_sweep_us{0};  // the last sweep's
  std::atomic<uint64_t> tags_allowed{0}, tags_denied{0};
  std::atomic<uint64_t> lane_concluded{0}, lane_answered{0}, lane_declined{0};  // lane.cc: worker-side conclusions
  // lane_queue.cc: inodes queued in the native lane, handed to JS, refused (pool.queuePerUid), concluded there; wakes
  std::atomic<uint64_t> lane_queued{0}, lane_joined{0}, lane_handed{0}, lane_refused{0}, lane_jobs_concluded{0}, lane_wakes{0}, lane_batches{0}, lane_late{0};
  std::atomic<uint64_t> lane_orphaned{0};  // jobs of a worker that went away mid-batch, handed to JS (LaneWorkerGone)
  std::atomic<uint64_t> fast_outside{0}, tree_checks{0}, tree_check_ns{0}, tree_outside{0}, tree_changes_dropped{0}, tree_forget_moves{0}, tree_relinked{0}, tree_checkpoints{0};
  std::atomic<uint64_t> latency[kLatencyBuckets] = {};
};

// What a bless was judged on: size and mtime before the content was read, ctime after our last tag write (answers.cc).
struct JudgedStamp {
  bool known = false;
  int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
};

class Gate : public Napi::ObjectWrap<Gate> {
 public:
  static Napi::Function Class(Napi::Env env);
  explicit Gate(const Napi::CallbackInfo &info);
  ~Gate() override;

 private:
  // JS methods (gate.cc)
  Napi::Value MarkFilesystem(const Napi::CallbackInfo &info);
  Napi::Value MarkMount(const Napi::CallbackInfo &info);
  Napi::Value MarkTree(const Napi::CallbackInfo &info);
  Napi::Value UnmarkTree(const Napi::CallbackInfo &info);
  Napi::Value UnmarkFilesystem(const Napi::CallbackInfo &info);
  Napi::Value UnmarkMount(const Napi::CallbackInfo &info);
  Napi::Value Answer(const Napi::CallbackInfo &info);
  Napi::Value Release(const Napi::CallbackInfo &info);
  Napi::Value Bless(const Napi::CallbackInfo &info);
  Napi::Value QueueBless(const Napi::CallbackInfo &info);  // answers.cc
  Napi::Value Condemn(const Napi::CallbackInfo &info);
  Napi::Value Forget(const Napi::CallbackInfo &info);
  Napi::Value ForgetAll(const Napi::CallbackInfo &info);
  Napi::Value ForgetsDone(const Napi::CallbackInfo &info);
  Napi::Value ForgetInode(const Napi::CallbackInfo &info);
  Napi::Value SharedMapSweep(const Napi::CallbackInfo &info);  // map_sweep.cc
  Napi::Value SetExempt(const Napi::CallbackInfo &info);
  Napi::Value Stats(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);
  Napi::Value SetTagPolicy(const Napi::CallbackInfo &info);  // tag_settle.cc
  Napi::Value SettleWalk(const Napi::CallbackInfo &info);    // settle_walk.cc
  Napi::Value LaneId(const Napi::CallbackInfo &info);        // lane.cc
  Napi::Value SetLane(const Napi::CallbackInfo &info);       // lane.cc
  Napi::Value SetLaneQueue(const Napi::CallbackInfo &info);  // lane_queue.cc
  Napi::Value LaneClaim(const Napi::CallbackInfo &info);     // lane_queue.cc
  Napi::Value LaneRelease(const Napi::CallbackInfo &info);   // lane_queue.cc

 public:
  // lane.cc — a pool worker concludes an allow here, from its own thread (see lane.cc): Concluded (`answered`: the
  // events answered), Declined (the main thread decides, as before), or Changed (the file changed since it was
  // judged: its answers describe content that is gone).
  enum class LaneEnd { Concluded, Declined, Changed };
  LaneEnd LaneConclude(uint32_t epoch, uint32_t seq, int fd, const JudgedStamp &judged, std::vector<uint64_t> &answered);
  // lane.cc: write a worker's claimed allows, drop their records, close their fds (lane.cc, lane_queue.cc).
  void WriteLaneAllows(const std::vector<std::pair<uint64_t, int>> &work);
  // lane_queue.cc — stage B: a worker takes queued cold inodes (up to `max`, round robin per uid) and finishes each:
  // concluded allow here, or handed to JS as perm events. Gone: nothing to do (handed over already, or stopping).
  struct LaneTaken { uint64_t ticket; int fd; uint32_t seq; int32_t pid; };
  // One event a worker answered (LaneFinish): for the books of who waited how long (src/daemon/costs.ts).
  struct LaneWaited { int32_t pid; int64_t uid; int64_t waited_us; };
  uint32_t LaneTake(uint32_t worker, size_t max, std::vector<LaneTaken> &out);  // their epoch (0: none; worker idle)
  enum class JobEnd { Concluded, Handed, Gone };
  JobEnd LaneFinish(uint64_t ticket, uint32_t epoch, bool allow, const JudgedStamp &judged, std::vector<LaneWaited> &answered);
  // A worker went away (its env's cleanup: an exit, a crash, the pool's close): the jobs it had taken go to JS now.
  void LaneWorkerGone(uint32_t worker);

 private:
  // lane.cc: the change sequence of an inode (bucketed: a collision only costs a fallback), bumped under mu_ by every
  // change record read for it and by condemns (not by JS's forgets: gate.cc); all of them at a forget-all.
  static constexpr uint32_t kSeqBuckets = 4096;
  uint32_t change_seq_[kSeqBuckets] = {};
  static uint32_t SeqBucket(const InodeKey &key) { return (uint32_t)(InodeKeyHash()(key) % kSeqBuckets); }
  void BumpSeqLocked(const InodeKey &key) { change_seq_[SeqBucket(key)]++; }
  void BumpAllSeqLocked() {
    for (auto &s : change_seq_) s++;
    for (auto &s : content_seq_) s++;
  }
  // answers.cc: the same buckets, bumped only by records of new content (modify, close-write, a shared mapping's
  // store) and at a forget-all — not by attribute records (a peer's lease, a user's chmod), which move ctime alone.
  uint32_t content_seq_[kSeqBuckets] = {};
  void BumpContentSeqLocked(const InodeKey &key) { content_seq_[SeqBucket(key)]++; }
  uint32_t lane_epoch_ = 0;  // under mu_; 0: no worker may conclude (set by JS: setLane)
  uint32_t lane_id_ = 0;
  std::mutex lane_users_mu_;  // guards lane_users_; a leaf
  std::condition_variable lane_users_cv_;
  int lane_users_ = 0;
  friend struct LaneUse;
  friend void MarkDelivered(uint32_t lane, const std::vector<OutEvent> &batch);
  void LaneRegister();
  void LaneUnregister();  // Shutdown: no new conclusion starts, and those under way end, before anything closes
  // lane_queue.cc, all under mu_ (every step of a job touches pending_ too: a mutex of its own would only ever be
  // taken inside mu_). The pool's workers are found by lane_pool_ in the process-wide worker registry.
  bool lane_queue_on_ = false;
  uint32_t lane_pool_ = 0, lane_per_uid_ = 0, lane_refusal_ = 0;
  uint64_t next_ticket_ = 1;
  std::unordered_map<InodeKey, LaneJob, InodeKeyHash> lane_jobs_;
  std::unordered_map<uint64_t, InodeKey> lane_tickets_;
  std::unordered_map<uint32_t, std::deque<InodeKey>> lane_queues_;  // per uid, arrival order
  std::deque<uint32_t> lane_turns_;                                 // uids with queued jobs: the round robin
  std::unordered_map<uint32_t, uint32_t> lane_by_uid_;              // jobs queued or taken, per uid (queuePerUid)
  size_t lane_waiting_ = 0;                                         // jobs queued, not taken
  // Inodes JS holds: its pending events (Pending::js) and its own judgements (laneClaim); never queued in the lane.
  std::unordered_map<InodeKey, uint32_t, InodeKeyHash> js_holds_;
  std::vector<OutEvent> handed_;  // handed to JS: the reader delivers them with its next batch
  enum class LaneRoute { Js, Join, New, Refuse };
  LaneRoute LaneRouteLocked(const InodeKey &key, uint32_t uid, bool js_only);
  void LaneQueueLocked(const InodeKey &key, uint32_t uid, OutEvent &ev, int fd, Pending &p);  // New
  void JsHoldLocked(const InodeKey &key) { js_holds_[key]++; }
  void JsLetGoLocked(const InodeKey &key);
  bool HandOverLocked(const InodeKey &key);  // true: events to deliver (wake the reader)
  void WakeLaneWorkers();                    // reader thread, after a round that queued jobs
  void TakeHandedLocked(std::vector<OutEvent> &batch);
  void LaneQueueShutdownLocked();
  bool lane_wake_ = false;  // reader thread only: jobs were queued this round
  bool lane_rewake_ = false;  // under mu_: a worker went away with jobs still queued; the reader wakes the others
  void Wake();              // poke the reader's poll (handed-over events to deliver)
  std::atomic<bool> lane_hint_{false};  // lane_queue_on_, read without mu_ (whether the root name check is worth it)
  static bool RootNeedsJs(int32_t tid, int32_t tgid, const char *tid_name);
  // Pending records per inode (the conclusion answers an inode's delivered events); kept with pending_.
  std::unordered_map<InodeKey, std::vector<uint64_t>, InodeKeyHash> pending_keys_;
  void IndexPendingLocked(uint64_t id, const InodeKey &key);
  void UnindexPendingLocked(uint64_t id, const InodeKey &key);

  // marks.cc
  Napi::Value Mark(const Napi::CallbackInfo &info, unsigned int kind_flags, bool add);
  void RememberFilesystem(const std::string &path);
  bool RemoveIgnoreMarkByHandle(uint64_t dev, int handle_type, const std::string &handle);
  bool RemoveMarkByHandle(uint64_t dev, int handle_type, const std::string &handle, bool deny);
  bool AddDenyOpenMarkLocked(int fd, const InodeKey &key);
  bool RemoveDenyOpenMark(int dfd, const char *path);
  void DropDenyOpenMarkLocked(VerdictEntry &e, const InodeKey &key, int fd);
  void ForgetAllLocked(bool walk_after = false);  // walk_after: the settle walk again, once the marks are cleared
  // marks.cc: the unmark thread clears what ForgetAllLocked asked of the kernel, outside every lock of the hot path.
  void RunUnmark();
  void StopUnmark();
  bool UnmarkAllInPlace(const std::unordered_map<uint64_t, int> &mounts);
  std::mutex unmark_mu_;  // guards unmark_stop_ and the increments of c_.forgets_asked; a leaf (taken under mu_)
  std::condition_variable unmark_cv_;
  bool unmark_stop_ = false;
  bool walk_after_unmark_ = false;  // a forget asked for the settle walk: started when its run is through
  std::atomic<bool> unmark_stopping_{false};
  std::thread unmark_thread_;
  bool AddIgnoreMark(int fd);
  bool AddIgnoreBits(int fd, uint64_t ignore);
  // gate.cc: one verdict entry for the open file (generation, stamp, and for Allowed the handle that removes its
  // ignore mark later), and putting it in the table (which drops the inode's deadline budget).
  VerdictEntry EntryOf(int fd, Verdict verdict, uint32_t response, const struct stat *known = nullptr, uint32_t known_gen = 0);
  void RememberLocked(const InodeKey &key, VerdictEntry &&e);
  void SweepTableLocked();
  bool RemoveIgnoreMark(int dfd, const char *path);

  // trees.cc — tree guards on a filesystem mark: which inodes need judging
  enum class Place : uint8_t { NoTree, Inside, Outside };
  struct TreeRoot {
    std::string prefix;  // the root's path in our namespace, as its fd names it
    int fd;              // the root directory, for open_by_handle_at
    uint64_t ino;
    uint64_t mnt_id;     // the mount the fd was opened through (statx STATX_MNT_ID)
  };
  struct GuardedFs {
    bool whole = false;  // a filesystem guard: every inode is judged
    std::string mode;    // where the shared filesystem mark waits
    bool fell_back = false;
    bool open_checkpoint = false;  // FAN_OPEN_PERM added to a read-mode mark for trees (trees.cc TreeMiss)
    std::vector<TreeRoot> roots;
  };
  struct OutsideEntry {
    int handle_type = 0;
    std::string handle;
    int64_t mark_retry_ns = 0;
  };
  Napi::Value Guard(const Napi::CallbackInfo &info, bool tree);
  Napi::Value Unguard(const Napi::CallbackInfo &info, bool tree);
  Place Locate(uint64_t dev, const struct file_handle *fh, bool directory);
  Place LocateFd(int fd, uint64_t dev);
  void RememberOutside(int fd, const InodeKey &key);
  bool KnownOutsideLocked(const InodeKey &key, uint64_t mask, bool &retry_mark);
  bool TreeMiss(int fd, const InodeKey &key, uint64_t mask, bool &remember_outside);
  bool TreeCheckpoint(int fd, const InodeKey &key, uint64_t mask, bool &remember_outside);
  void ForgetOutsideLocked();
  bool TreeChangeLocked(uint64_t mask, const OutEvent &ev, const InodeKey &key, bool in_table);
  void CloseTrees();

  // reader.cc — the reader thread and everything it calls
  void Run();
  void ReadGateGroup(std::vector<OutEvent> &batch);
  // held_since: 0 the first time; when the event was first set aside, when asked again (RetryHeld).
  void HandleGateEvent(const struct fanotify_event_metadata *md, std::vector<OutEvent> &batch, int64_t held_since = 0);
  void ReadChangeGroup(std::vector<OutEvent> &batch);
  void HandleChangeEvent(const struct fanotify_event_metadata *md, std::vector<OutEvent> &batch);
  void HandleOverflow(std::vector<OutEvent> &batch);
  void ExpireDeadlines(std::vector<OutEvent> &batch);
  void ForwardPermission(const struct fanotify_event_metadata *md, int fd, const InodeKey &key, std::vector<OutEvent> &batch);
  bool FallbackSlotLocked(FallbackWhy why, OutEvent &rec);
  void FillFallback(OutEvent &rec, int fd, int32_t tid, uint64_t mask, const InodeKey &key, uint32_t response);
  uint32_t DeadlineAnswerLocked(const InodeKey &key);
  const struct timespec *PollTimeout(struct timespec &ts);
  void SkipStoppedTime();
  // An event whose accessor had not fallen asleep in its syscall when asked what it does: set aside (its bytes
  // copied from the read buffer) and judged again from the start after the batch (RetryHeld), for at most kHoldNs;
  // then its accessor counts as a reader.
  struct HeldEvent {
    alignas(8) char bytes[128];  // a fanotify_event_metadata and its info records
    int64_t since_ns = 0;
    int64_t next_ns = 0;   // when to ask again
    int64_t delay_ns = 0;  // the wait before that (doubles: a preempted accessor may need a while to be scheduled)
  };
  static constexpr size_t kMaxHeld = 1024;
  static constexpr int64_t kHoldNs = 5000000;         // a set-aside event counts as a read after this (a preempted accessor)
  static constexpr int64_t kHeldPollNs = 20000;       // the first look again, 20 µs after
  static constexpr int64_t kHeldMaxDelayNs = 640000;  // at most this between two looks
  int64_t held_delay_ns_ = 0;                         // RetryHeld: the delay of the event being judged again
  bool Hold(const struct fanotify_event_metadata *md, int64_t held_since);
  void RetryHeld(std::vector<OutEvent> &batch);
  void AnswerHeld();
  std::vector<HeldEvent> held_, held_again_;  // reader thread only
  // Who an accessor thread is (tgid, real uid, whether root's name check sends it to JS), kept for a moment per tid:
  // a reader thread of a file server asks about the same threads again and again, and /proc/<tid>/status is the
  // dearest read of a cold event. What it feeds is fairness (the per-uid queues and caps) and routing to JS, never a
  // verdict: a tid reused or a uid changed within kIdentityNs costs at most one event in another uid's bucket.
  struct Identity {
    int32_t tid = 0;
    pid_t tgid = 0;
    uint32_t uid = UINT32_MAX;
    int8_t root_js = -1;  // -1: not asked yet (asked only while the lane is on)
    int64_t at_ns = 0;
  };
  static constexpr size_t kIdentitySlots = 256;       // direct-mapped by tid
  static constexpr int64_t kIdentityNs = 20000000;    // 20 ms
  Identity identities_[kIdentitySlots];               // reader thread only
  const Identity *IdentityOf(int32_t tid, bool want_root_js);
  void Deliver(std::vector<OutEvent> *batch);
  bool IsExempt(int32_t tid);
  bool IsOwn(int32_t tid);
  // tag_settle.cc: what a miss's valid tags settle. Allowed: answered, cached, marked and closed there. Denied:
  // nothing done yet (the accessor may be a writer); DenyByTags then refuses, caches and tells JS.
  Settlement SettleByTags(int fd, const InodeKey &key, bool perm, uint32_t &deny_response);
  void DenyByTags(const struct fanotify_event_metadata *md, int fd, const InodeKey &key, bool perm, uint32_t response, std::vector<OutEvent> &batch);

  // answers.cc — JS's answers (and the ignore marks of its blesses), written on their own thread in batches
  struct QueuedWork {
    uint64_t id;        // the Pending record answered; 0: a bless of `fd` (a descriptor of ours, closed after)
    int fd;
    uint32_t response;
    JudgedStamp judged;  // a bless: the file as its judgement saw it (unchecked if not known)
  };
  void QueueWork(const QueuedWork &w);
  void KickAnswers();   // wake the answer thread if work waits for it (once per JS loop turn; the reader's deadlines)
  void StartFlush(Napi::Env env);
  void StopFlush();
  void RunAnswers();
  static constexpr int64_t kStaleBlessCheckNs = 5'000'000'000;  // JS queues a bless and its answers in one turn
  std::atomic<int64_t> stale_until_ns_{0};
  bool FlagStaleBless(int fd, bool flag);  // answers.cc: (un)flag the waiting events of a bless's inode
  bool FlagWrittenSince(int fd);  // answers.cc: flag the waiting events of an inode written since they were read
  // answers.cc / reader.cc: the answer thread has the reader thread read the change group up to now, bounded.
  static constexpr int64_t kDrainWaitMs = 200;
  bool DrainChanges();
  std::mutex drain_mu_;  // guards drain_done_; a leaf
  std::condition_variable drain_cv_;
  std::atomic<uint64_t> drain_asked_{0};
  uint64_t drain_done_ = 0;
  uint64_t drain_seen_ = 0;  // reader thread only
  uint32_t AllowOrRefusal(uint64_t id);  // answers.cc: FAN_ALLOW, or the retry answer for a flagged event
  void StopAnswers();  // writes everything queued, then joins the thread
  // True: the verdict is in the table. Else, if content_moved is given, it says whether size or mtime moved (a write).
  bool BlessFd(int fd, bool &marked, const JudgedStamp &judged, bool *content_moved = nullptr);
  std::mutex answers_mu_;  // guards the four below; never held together with mu_
  std::condition_variable answers_cv_;
  std::vector<QueuedWork> answers_;
  bool answers_stop_ = false, answers_idle_ = false;
  std::thread answer_thread_;
  bool kick_answers_ = false;  // reader thread only: a queued answer's deadline came (ExpireDeadlines)
  std::atomic<bool> answers_waiting_{false};  // queued and not yet handed over: KickAnswers has work
  struct FlushHandles;
  FlushHandles *flush_ = nullptr;  // the loop's check + prepare handles that call KickAnswers (main thread)

  // answering (gate.cc)
  void WriteResponse(int fd, uint32_t response);
  bool AnswerLocked(uint64_t id, Pending &p, uint32_t response);
  void Shutdown();
  static void CleanupHook(void *arg);
  bool hook_registered_ = false;

  int gate_fd_ = -1, change_fd_ = -1, wake_fd_ = -1;
  pid_t own_pid_;
  bool audit_ = false;
  int64_t deadline_ns_;
  int64_t access_ns_;          // how long all events of one access may wait together
  uint32_t deadline_answer_;   // FAN_ALLOW, or a refusal (never served for a denied inode)
  uint32_t overload_answer_;   // a refusal: past maxPending, or past one uid's share
  size_t max_pending_;
  size_t max_pending_per_uid_;
  size_t max_entries_ = 1 << 20;
  size_t max_allowed_ = 65536;  // Allowed entries the table grows by before a sweep (SweepTableLocked)
  size_t sweep_at_ = 65536;

  std::mutex mu_;  // guards everything below until the thread
  std::unordered_map<uint64_t, Pending> pending_;
  // (deadline, id), earliest first: an event's deadline is the sooner of its own and its access budget's.
  std::priority_queue<std::pair<int64_t, uint64_t>, std::vector<std::pair<int64_t, uint64_t>>, std::greater<>> deadlines_;
  std::unordered_map<InodeKey, AccessBudget, InodeKeyHash> budgets_;
  std::unordered_map<uint32_t, uint32_t> pending_by_uid_;
  // The reader's own clock, for SkipStoppedTime: when it last looked (monotonic and its thread CPU time, ns), and how
  // long the poll it then entered could sleep (-1: no deadline pending, unbounded). Reader thread only.
  int64_t looked_ns_ = 0, looked_cpu_ns_ = 0, poll_timeout_ns_ = -1;
  std::unordered_set<uint64_t> open_wait_devs_;  // filesystems with an open-mode guard: FAN_OPEN_PERM waits for JS there
  struct FallbackWindow { int64_t second = 0; uint32_t sent = 0; uint64_t suppressed = 0; };
  FallbackWindow fallback_windows_[(int)FallbackWhy::kCount];
  uint64_t next_id_ = 1;
  size_t held_notices_ = 0;
  VerdictTable table_;
  std::unordered_set<int32_t> exempt_pids_;
  std::unordered_set<long> exempt_uids_;
  std::unordered_map<std::string, FsInfo> filesystems_;  // fsid hex -> info
  std::unordered_map<uint64_t, int> mount_fd_by_dev_;
  std::shared_ptr<const GateTagPolicy> tag_policy_;  // null: every miss goes to JS
  std::atomic<bool> tag_policy_ready_{false};         // tag_policy_ is set: worth reading changes before settling
  std::unordered_map<InodeKey, OutsideEntry, InodeKeyHash> outside_;  // inodes outside every tree (trees.cc)
  // Inodes someone mapped MAP_SHARED + PROT_WRITE (seen in the mmap's pre-content event, or by the /proc sweep),
  // with when that was last seen: stores through such a mapping change content without an event or a time change
  // (exp11), so no cached verdict or tag of theirs is trusted — every access judges the content as it is (reader.cc,
  // SharedMapRejudge). Only a sweep that no longer finds the mapping ends it (PruneSharedMaps): a close-after-write
  // does not, since the change group's record of an earlier close can be read after the gate group's mmap event.
  std::unordered_map<InodeKey, int64_t, InodeKeyHash> shared_maps_;
  static constexpr size_t kMaxSharedMaps = 1 << 16;

  std::mutex trees_mu_;  // guards guarded_; taken after mu_, never before it
  std::unordered_map<uint64_t, GuardedFs> guarded_;  // dev -> filesystem guards and tree roots there

  std::thread thread_;
  std::atomic<bool> stopping_{false};
  bool closed_ = false;
  Napi::ThreadSafeFunction tsfn_;
  Counters c_;

  void SharedMapRejudge(int fd, const InodeKey &key, int32_t tid, std::vector<OutEvent> &batch);
  int FlagSharedMapPath(const char *path);          // gate.cc: follow the inode behind a map_files link
  size_t PruneSharedMapsBefore(int64_t started);    // gate.cc: let go of inodes no sweep since `started` found

  // map_sweep.cc — the /proc/<pid>/maps sweep on its own thread (shared writable mappings of silent files)
  struct MapSweepControl;
  static void MapSweepRun(std::shared_ptr<MapSweepControl> ctl);
  void StopMapSweep();  // Shutdown: joins it, or leaves it behind (detached, cut off from the gate) after 1 s
  std::shared_ptr<MapSweepControl> map_sweep_;
  std::thread map_sweep_thread_;

  // settle_walk.cc — the background settle walk: files whose valid tags settle them get their table entry (and,
  // allowed, their ignore mark) before anyone accesses them. Lock order: mu_ before walk_mu_; never mu_ under it.
  void RequestSettleWalk();  // the table was forgotten whole (JS forgetAll, overflow): walk again, if enabled
  void StopSettleWalk();     // Shutdown, before the reader thread stops (it answers the walk's own opens)
  void SettleWalkRun();
  bool SettleWalkTree(int root, uint64_t run);
  void SettleWalkFile(int fd);
  bool WalkWait(int64_t ns, uint64_t run);
  Napi::Object SettleWalkStats(Napi::Env env);
  struct WalkControl {
    bool enabled = false, stop = false;
    uint64_t requested = 0;  // bumped per request; a walk under way starts over when it moves
    std::atomic<int64_t> interval_ns{1000000};
  };
  struct WalkCounters {
    std::atomic<int> state{0};  // 0 idle, 1 walking, 2 done
    std::atomic<uint64_t> runs{0}, completed{0}, walked{0}, allowed{0}, denied{0}, unsettled{0}, known{0}, changed{0};
    std::atomic<uint64_t> skipped{0}, errors{0}, paused_ms{0};
  };
  std::mutex walk_mu_;  // guards walk_ (but its interval) and walk_thread_'s start
  std::condition_variable walk_cv_;
  WalkControl walk_;
  WalkCounters w_;
  std::thread walk_thread_;
};

int64_t now_ns();
void MarkDelivered(uint32_t lane, const std::vector<OutEvent> &batch);  // lane.cc
void InitLane(Napi::Env env, Napi::Object exports);                    // lane.cc: laneConclude, in every env
void InitLaneQueue(Napi::Env env, Napi::Object exports);               // lane_queue.cc: laneAttach/Take/Finish
bool key_of_fd(int fd, InodeKey &key);
bool generation_of_fd(int fd, uint32_t &gen);
std::string fsid_hex(const void *fsid);

}  // namespace blessd
