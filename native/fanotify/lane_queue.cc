// Overview — the native cold lane's queue (stage B, docs/bench.md): the reader thread queues a cold permission
// event's inode here instead of handing it to JS, and pool workers take it from here, judge it (judge-batch.ts) and
// finish it here — concluded allow (the stamp-checked bless and every waiting event answered, from the worker), or
// handed to JS as today's 'perm' records, after which the inode is JS's (js_holds_) until JS lets go of it.
//
// Owns: the jobs (one per inode: later events of the inode join it), the per-uid round robin they are taken in, the
// pool.queuePerUid bound (past it: the retry refusal at once, and a 'queue-per-uid' fallback record for JS to log),
// the process-wide registry of pool workers (one ThreadSafeFunction per worker env) and their wake-ups.
// What keeps it safe:
//  - a job's events stay in pending_: the deadline, the overload cap and Shutdown answer them as any other; a job
//    finished late only drops what was answered meanwhile;
//  - only an inode nobody in JS holds is queued: not one with events JS has (Pending::js), not one JS judges on its
//    own (laneClaim: every inode of the registry), not one with a verdict entry (Dirty, Denied), not root's nfsd or
//    peer-scan accessors (RootNeedsJs). JS claiming a queued inode (a change record made it a machine, the crawl)
//    hands it over at once, or makes its worker hand it over;
//  - a worker concludes only an allow of the stack under the lane epoch the job was taken with, with the inode's
//    change sequence unmoved since its first event, no verdict entry in the way, and a bless whose stamp check
//    passed; anything else is handed to JS, which is always safe (the file only takes the slow path);
//  - Shutdown (after LaneUnregister, so no worker is inside) closes the queued jobs' fds; a taken job's fd is its
//    worker's, and its finish after that finds no gate and does nothing.
// Must not: answer anything but allow; call into JS under mu_; block the reader thread (a wake-up is a non-blocking
// call). Lock order: mu_, then workers_mu (a leaf); lanes_mu (lane.cc) never under either.
#include <fcntl.h>
#include <unistd.h>
#include <cstring>
#include "fanotify/compat.h"
#include "fanotify/gate.h"

namespace blessd {

namespace {
// A pool worker that attached to the lane: woken (its JS drains the lane) when jobs wait and it is idle.
struct LaneWorker {
  uint32_t id = 0;
  uint32_t pool = 0;
  bool idle = true;
  bool gone = false;
  Napi::ThreadSafeFunction tsfn;
};
std::mutex workers_mu;  // guards the three below; a leaf
std::unordered_map<uint32_t, LaneWorker *> workers;               // by worker id
std::unordered_map<uint32_t, std::vector<LaneWorker *>> by_pool;  // pool -> its workers
std::unordered_map<uint32_t, uint32_t> pool_lanes;                // pool -> the lane id of the gate it serves
uint32_t next_worker = 1;

// Files one worker is woken for: more queued than this wakes another idle worker too.
constexpr size_t kFilesPerWake = 8;
constexpr size_t kTakeMax = 16;

// On the worker's thread. Never lets an exception out (it would abort the process): a worker being terminated
// cannot call into JS any more, and a throw of the drain itself is its own (its jobs end at their deadline).
void CallWake(Napi::Env env, Napi::Function fn) {
  if (env == nullptr || fn.IsEmpty()) return;
  try {
    fn.Call({});
  } catch (const Napi::Error &) {
  }
}

bool read_comm(int pid, char *out, size_t n) {
  char path[40];
  snprintf(path, sizeof path, "/proc/%d/comm", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t r = read(fd, out, n - 1);
  close(fd);
  if (r <= 0) return false;
  out[r] = 0;
  return true;
}
}  // namespace

// uid 0 only: a kernel nfsd thread (it must get EAGAIN, not wait: dispatch.ts) or a thread of a process named like
// us (a peer daemon's scan: dispatch.ts checks its lease). A filter of cost, not of trust: JS decides.
// `tid_name`: the thread's name as task_identity read it ("" when unknown: then read here).
bool Gate::RootNeedsJs(int32_t tid, int32_t tgid, const char *tid_name) {
  char comm[32];
  const char *name = tid_name;
  if (!name || !name[0]) {
    if (!read_comm(tid, comm, sizeof comm)) return true;  // gone or unreadable: JS sorts it out
    name = comm;
  }
  if (strncmp(name, "nfsd", 4) == 0 || strncmp(name, "blessd", 6) == 0) return true;
  if (tgid == tid) return false;
  if (!read_comm(tgid, comm, sizeof comm)) return true;
  return strncmp(comm, "nfsd", 4) == 0 || strncmp(comm, "blessd", 6) == 0;
}

Gate::LaneRoute Gate::LaneRouteLocked(const InodeKey &key, uint32_t uid, bool js_only) {
  if (!lane_queue_on_ || lane_epoch_ == 0 || js_only) return LaneRoute::Js;
  if (js_holds_.count(key)) return LaneRoute::Js;
  if (lane_jobs_.count(key)) return LaneRoute::Join;
  if (table_.count(key)) return LaneRoute::Js;  // Dirty or Denied (or a stale allow): JS's machine decides
  auto u = lane_by_uid_.find(uid);
  if (u != lane_by_uid_.end() && u->second >= lane_per_uid_) return LaneRoute::Refuse;
  return LaneRoute::New;
}

void Gate::LaneQueueLocked(const InodeKey &key, uint32_t uid, OutEvent &ev, int fd, Pending &p) {
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {  // no descriptor to spare: JS's way (it dups one too, and fails its own way)
    p.js = true;
    JsHoldLocked(key);
    return;
  }
  LaneJob &job = lane_jobs_[key];
  job.ticket = next_ticket_++;
  job.fd = own;
  job.seq = ev.seq;
  job.uid = uid;
  job.events.push_back(ev);
  lane_tickets_[job.ticket] = key;
  auto &q = lane_queues_[uid];
  if (q.empty()) lane_turns_.push_back(uid);
  q.push_back(key);
  lane_by_uid_[uid]++;
  lane_waiting_++;
  p.lane = true;
  lane_wake_ = true;
  c_.lane_queued++;
}

void Gate::JsLetGoLocked(const InodeKey &key) {
  auto h = js_holds_.find(key);
  if (h != js_holds_.end() && --h->second == 0) js_holds_.erase(h);
}

// The job's events go to JS as 'perm' records (those answered meanwhile are dropped: nobody waits on them), and the
// inode is JS's from now on. A queued job's fd is closed here; a taken one's is its worker's.
bool Gate::HandOverLocked(const InodeKey &key) {
  auto j = lane_jobs_.find(key);
  if (j == lane_jobs_.end()) return false;
  LaneJob &job = j->second;
  bool any = false;
  for (OutEvent &ev : job.events) {
    auto it = pending_.find(ev.id);
    if (it == pending_.end()) continue;
    Pending &p = it->second;
    if (p.answered) {
      close(p.fd);
      UnindexPendingLocked(ev.id, key);
      pending_.erase(it);
      continue;
    }
    p.lane = false;
    p.js = true;
    JsHoldLocked(key);
    handed_.push_back(std::move(ev));
    any = true;
  }
  if (!job.taken) {
    close(job.fd);
    lane_waiting_--;  // its key stays in its uid's queue: LaneTake skips keys without a queued job
  }
  auto u = lane_by_uid_.find(job.uid);
  if (u != lane_by_uid_.end() && --u->second == 0) lane_by_uid_.erase(u);
  lane_tickets_.erase(job.ticket);
  lane_jobs_.erase(j);
  c_.lane_handed++;
  return any;
}

void Gate::TakeHandedLocked(std::vector<OutEvent> &batch) {
  if (handed_.empty()) return;
  for (OutEvent &e : handed_) batch.push_back(std::move(e));
  handed_.clear();
}

void Gate::LaneQueueShutdownLocked() {
  for (auto &kv : lane_jobs_)
    if (!kv.second.taken) close(kv.second.fd);
  lane_jobs_.clear();
  lane_tickets_.clear();
  lane_queues_.clear();
  lane_turns_.clear();
  lane_by_uid_.clear();
  lane_waiting_ = 0;
  handed_.clear();
  js_holds_.clear();
  lane_queue_on_ = false;
  lane_hint_ = false;
}

// Reader thread, once per round that queued jobs: as many idle workers as the waiting jobs need.
void Gate::WakeLaneWorkers() {
  size_t waiting;
  uint32_t pool;
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting = lane_waiting_;
    pool = lane_pool_;
  }
  if (waiting == 0) return;
  size_t want = (waiting + kFilesPerWake - 1) / kFilesPerWake;
  std::lock_guard<std::mutex> lock(workers_mu);
  auto p = by_pool.find(pool);
  if (p == by_pool.end()) return;
  for (LaneWorker *w : p->second) {
    if (want == 0) break;
    if (!w->idle || w->gone) continue;
    if (w->tsfn.NonBlockingCall(CallWake) != napi_ok) continue;  // its env is going away
    w->idle = false;
    want--;
    c_.lane_wakes++;
  }
}

uint32_t Gate::LaneTake(uint32_t worker, size_t max, std::vector<LaneTaken> &out) {
  std::lock_guard<std::mutex> lock(mu_);
  // Idle, decided under mu_: a job queued from now on (under mu_ too) finds this worker idle and wakes it.
  auto idle = [&]() {
    std::lock_guard<std::mutex> wl(workers_mu);
    auto w = workers.find(worker);
    if (w != workers.end()) w->second->idle = true;
    return 0u;
  };
  if (!lane_queue_on_ || lane_epoch_ == 0) return idle();
  // One job per uid per turn; a uid with more goes to the back of the turn.
  while (out.size() < max && !lane_turns_.empty()) {
    uint32_t uid = lane_turns_.front();
    lane_turns_.pop_front();
    auto q = lane_queues_.find(uid);
    if (q == lane_queues_.end()) continue;
    while (!q->second.empty()) {
      InodeKey key = q->second.front();
      q->second.pop_front();
      auto j = lane_jobs_.find(key);
      if (j == lane_jobs_.end() || j->second.taken || j->second.uid != uid) continue;  // handed over meanwhile
      j->second.taken = true;
      j->second.worker = worker;
      lane_waiting_--;
      out.push_back({j->second.ticket, j->second.fd, j->second.seq, j->second.events.front().pid});
      break;
    }
    if (q->second.empty()) lane_queues_.erase(q);
    else lane_turns_.push_back(uid);
  }
  if (out.empty()) return idle();
  c_.lane_batches++;
  return lane_epoch_;
}

Gate::JobEnd Gate::LaneFinish(uint64_t ticket, uint32_t epoch, bool allow, const JudgedStamp &judged, std::vector<LaneWaited> &answered) {
  InodeKey key;
  auto fits = [&]() {
    auto t = lane_tickets_.find(ticket);
    if (t == lane_tickets_.end()) return false;
    key = t->second;
    const LaneJob &job = lane_jobs_.at(key);
    if (!allow || job.claimed || !judged.known) return false;
    if (lane_epoch_ == 0 || lane_epoch_ != epoch) return false;
    if (change_seq_[SeqBucket(key)] != job.seq) return false;
    auto e = table_.find(key);
    return e == table_.end() || e->second.verdict == Verdict::Allowed;
  };
  // Not concluded: handed to JS (the reader delivers its events: poke it).
  auto hand = [&]() {
    if (HandOverLocked(key)) Wake();
    c_.lane_declined++;
    return JobEnd::Handed;
  };
  int fd = -1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!lane_tickets_.count(ticket)) {
      c_.lane_late++;  // handed over already (its deadline, JS's claim, the queue turned off)
      return JobEnd::Gone;
    }
    if (!fits()) return hand();
    fd = lane_jobs_.at(key).fd;
  }
  // The bless first, as lane.cc does: an accessor woken by its allow finds the verdict cached. Stale (the file moved
  // since its judgement): nothing cached, and JS judges it again.
  bool marked = false;
  const bool blessed = BlessFd(fd, marked, judged);
  std::vector<std::pair<uint64_t, int>> work, drop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!lane_tickets_.count(ticket)) {  // handed over while the bless was under way
      c_.lane_late++;
      return JobEnd::Gone;
    }
    // A change read while the bless was under way: JS decides (the change record dropped what the bless cached
    // if it came after it; if before, the sequence moved).
    if (!blessed || !fits()) return hand();
    LaneJob &job = lane_jobs_.at(key);
    const int64_t now = now_ns();
    for (const OutEvent &ev : job.events) {
      auto it = pending_.find(ev.id);
      if (it == pending_.end()) continue;
      Pending &p = it->second;
      if (p.queued) continue;
      if (p.answered) {  // the deadline answered it already: only its fd and record are left
        drop.emplace_back(ev.id, p.fd);
        continue;
      }
      p.answered = p.queued = true;  // claimed: nobody else answers or closes it; written and dropped below
      c_.by_js++;
      const int64_t waited_us = (now - p.forwarded_ns) / 1000;
      c_.latency[latency_bucket(waited_us)]++;
      auto u = pending_by_uid_.find(p.uid);
      if (u != pending_by_uid_.end() && --u->second == 0) pending_by_uid_.erase(u);
      work.emplace_back(ev.id, p.fd);
      answered.push_back({ev.pid, ev.uid, waited_us});
    }
    if (!work.empty()) budgets_.erase(key);
    for (auto &d : drop) {
      UnindexPendingLocked(d.first, key);
      pending_.erase(d.first);
    }
    auto u = lane_by_uid_.find(job.uid);
    if (u != lane_by_uid_.end() && --u->second == 0) lane_by_uid_.erase(u);
    lane_tickets_.erase(ticket);
    lane_jobs_.erase(key);
  }
  for (auto &d : drop) close(d.second);
  WriteLaneAllows(work);  // from this thread, as lane.cc does
  c_.lane_concluded++;
  c_.lane_jobs_concluded++;
  c_.lane_answered += work.size();
  return JobEnd::Concluded;
}

// On the going worker's own thread (its env's cleanup hook, lane_queue.cc DetachWorker): none of its JS runs any more,
// so its taken jobs would only end at their deadline (EAGAIN). They go to JS now, as a declined job does, and their
// fds — the worker's, which will never close them — are closed here. Queued jobs it was woken for stay queued: the
// reader wakes another worker for them.
void Gate::LaneWorkerGone(uint32_t worker) {
  std::vector<int> fds;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    std::vector<InodeKey> keys;
    for (auto &kv : lane_jobs_)
      if (kv.second.taken && kv.second.worker == worker) keys.push_back(kv.first);
    for (auto &k : keys) {
      fds.push_back(lane_jobs_.at(k).fd);
      wake |= HandOverLocked(k);
      c_.lane_orphaned++;
    }
    if (lane_waiting_ > 0) {
      lane_rewake_ = true;
      wake = true;
    }
  }
  for (int fd : fds) close(fd);
  if (wake) Wake();
}

// The reader delivers what was handed over: poke its poll.
void Gate::Wake() {
  uint64_t one = 1;
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof one) < 0) { /* it wakes for the next event anyway */ }
}

// setLaneQueue(null | { pool, perUid, refusal }): queue cold inodes for this pool's workers, or stop doing so (the
// jobs still queued go to JS at once; taken ones end as usual: their epoch check is what guards a stack change).
Napi::Value Gate::SetLaneQueue(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  bool on = info.Length() > 0 && info[0].IsObject();
  uint32_t pool = 0, per_uid = 0, refusal = 0;
  if (on) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (!o.Get("pool").IsNumber() || !o.Get("perUid").IsNumber() || !o.Get("refusal").IsNumber()) throw Napi::TypeError::New(env, "setLaneQueue({ pool, perUid, refusal }): numbers");
    pool = o.Get("pool").As<Napi::Number>().Uint32Value();
    per_uid = o.Get("perUid").As<Napi::Number>().Uint32Value();
    refusal = o.Get("refusal").As<Napi::Number>().Uint32Value();
    if ((refusal & 0xff) != FAN_DENY) throw Napi::TypeError::New(env, "setLaneQueue: refusal must be FAN_DENY or FAN_DENY_ERRNO");
    if (per_uid < 1) throw Napi::RangeError::New(env, "setLaneQueue: perUid must be at least 1");
  }
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return env.Undefined();
    if (!on) {
      std::vector<InodeKey> queued;
      for (auto &kv : lane_jobs_)
        if (!kv.second.taken) queued.push_back(kv.first);
      for (auto &k : queued) wake |= HandOverLocked(k);
      lane_queues_.clear();  // only keys of handed-over jobs were left in them
      lane_turns_.clear();
    }
    lane_queue_on_ = on;
    lane_hint_ = on;
    lane_pool_ = pool;
    lane_per_uid_ = per_uid;
    lane_refusal_ = refusal;
  }
  if (on) {
    std::lock_guard<std::mutex> lock(workers_mu);
    pool_lanes[pool] = lane_id_;
  }
  if (wake) Wake();
  return env.Undefined();
}

static bool key_arg(const Napi::CallbackInfo &info, InodeKey &key) {
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) return false;
  key = InodeKey{(uint64_t)info[0].As<Napi::Number>().Int64Value(), (uint64_t)info[1].As<Napi::Number>().Int64Value()};
  return true;
}

// laneClaim(dev, ino): JS judges this inode on its own now (an inode registry entry): none of its events is queued
// here until laneRelease. A job of it queued here goes to JS now; a taken one is handed over when its worker ends.
Napi::Value Gate::LaneClaim(const Napi::CallbackInfo &info) {
  InodeKey key;
  if (!key_arg(info, key)) throw Napi::TypeError::New(info.Env(), "laneClaim(dev, ino): numbers");
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return info.Env().Undefined();
    JsHoldLocked(key);
    auto j = lane_jobs_.find(key);
    if (j != lane_jobs_.end()) {
      if (j->second.taken) j->second.claimed = true;
      else wake = HandOverLocked(key);
    }
  }
  if (wake) Wake();
  return info.Env().Undefined();
}

Napi::Value Gate::LaneRelease(const Napi::CallbackInfo &info) {
  InodeKey key;
  if (!key_arg(info, key)) throw Napi::TypeError::New(info.Env(), "laneRelease(dev, ino): numbers");
  std::lock_guard<std::mutex> lock(mu_);
  if (!closed_) JsLetGoLocked(key);
  return info.Env().Undefined();
}

// ---- the worker side (any env: a pool worker's) ----

Gate *LaneGateUse(uint32_t lane, void *&token);  // lane.cc
void LaneGateDone(void *token);                  // lane.cc

static void DetachWorker(void *arg) {
  auto *w = static_cast<LaneWorker *>(arg);
  uint32_t lane = 0;
  {
    std::lock_guard<std::mutex> lock(workers_mu);
    auto l = pool_lanes.find(w->pool);
    if (l != pool_lanes.end()) lane = l->second;
    w->gone = true;
    workers.erase(w->id);
    auto &v = by_pool[w->pool];
    for (size_t i = 0; i < v.size(); i++)
      if (v[i] == w) {
        v[i] = v.back();
        v.pop_back();
        break;
      }
    if (v.empty()) by_pool.erase(w->pool);
  }
  // Out of the registry first (nobody wakes it now), then its jobs go to JS at once, never to the deadline; the
  // reader wakes the workers left (from its thread, not this one: envs are being torn down) for the queued ones.
  void *token = nullptr;
  if (Gate *gate = lane ? LaneGateUse(lane, token) : nullptr) {
    gate->LaneWorkerGone(w->id);
    LaneGateDone(token);
  }
  w->tsfn.Release();
  delete w;
}

// laneAttach(pool, onWake): this worker serves the pool's lane; onWake() is called (on this thread) when jobs wait
// and it is idle. Returns its worker id (for laneTake).
static Napi::Value LaneAttachJs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsFunction()) throw Napi::TypeError::New(env, "laneAttach(pool, onWake)");
  auto *w = new LaneWorker();
  w->pool = info[0].As<Napi::Number>().Uint32Value();
  w->tsfn = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "blessd-lane", 0, 1);
  w->tsfn.Unref(env);  // a wake-up source must not keep the worker alive
  {
    std::lock_guard<std::mutex> lock(workers_mu);
    w->id = next_worker++;
    workers[w->id] = w;
    by_pool[w->pool].push_back(w);
  }
  napi_add_env_cleanup_hook(env, DetachWorker, w);
  return Napi::Number::New(env, w->id);
}

// laneTake(worker, max): null (nothing waits: this worker is idle until woken), or { lane, epoch, jobs: [ticket, fd,
// seq, pid, ...] } — the worker owns each fd from here on (it closes them after laneFinish); pid: the first accessor's.
static Napi::Value LaneTakeJs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  size_t max = std::min<size_t>(kTakeMax, info[1].As<Napi::Number>().Uint32Value());
  uint32_t lane = 0;
  {
    std::lock_guard<std::mutex> lock(workers_mu);
    auto w = workers.find(id);
    if (w == workers.end()) return env.Null();
    auto l = pool_lanes.find(w->second->pool);
    if (l != pool_lanes.end()) lane = l->second;
  }
  std::vector<Gate::LaneTaken> out;
  uint32_t epoch = 0;
  void *token = nullptr;
  Gate *gate = lane ? LaneGateUse(lane, token) : nullptr;
  if (gate) {
    epoch = gate->LaneTake(id, max, out);
    LaneGateDone(token);
  } else {
    std::lock_guard<std::mutex> lock(workers_mu);  // no gate serves this pool now: idle until one wakes it
    auto w = workers.find(id);
    if (w != workers.end()) w->second->idle = true;
  }
  if (out.empty()) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("lane", lane);
  o.Set("epoch", epoch);
  Napi::Array jobs = Napi::Array::New(env, out.size() * 4);
  for (size_t i = 0; i < out.size(); i++) {
    jobs.Set(i * 4, (double)out[i].ticket);
    jobs.Set(i * 4 + 1, out[i].fd);
    jobs.Set(i * 4 + 2, out[i].seq);
    jobs.Set(i * 4 + 3, out[i].pid);
  }
  o.Set("jobs", jobs);
  return o;
}

// laneFinish(lane, epoch, ticket, allow, size, mtimeNs, ctimeNs): concluded allow here (blessed, its events answered):
// the answered events as [pid, uid, waitedUs, ...] (for the worker's per-batch books, lane-worker.ts); false: handed
// to JS (or already gone). The caller closes the job's fd after.
static Napi::Value LaneFinishJs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) throw Napi::TypeError::New(env, "laneFinish(lane, epoch, ticket, allow[, size, mtimeNs, ctimeNs]): 4 arguments at least");
  uint32_t lane = info[0].As<Napi::Number>().Uint32Value();
  uint32_t epoch = info[1].As<Napi::Number>().Uint32Value();
  uint64_t ticket = (uint64_t)info[2].As<Napi::Number>().Int64Value();
  bool allow = info[3].ToBoolean();
  JudgedStamp judged;
  bool lossless;
  if (allow && info[4].IsBigInt() && info[5].IsBigInt() && info[6].IsBigInt()) {
    judged.known = true;
    judged.size = info[4].As<Napi::BigInt>().Int64Value(&lossless);
    judged.mtime_ns = info[5].As<Napi::BigInt>().Int64Value(&lossless);
    judged.ctime_ns = info[6].As<Napi::BigInt>().Int64Value(&lossless);
  }
  void *token = nullptr;
  Gate *gate = LaneGateUse(lane, token);
  if (!gate) return Napi::Boolean::New(env, false);
  std::vector<Gate::LaneWaited> answered;
  Gate::JobEnd end = gate->LaneFinish(ticket, epoch, allow, judged, answered);
  LaneGateDone(token);
  if (end != Gate::JobEnd::Concluded) return Napi::Boolean::New(env, false);
  Napi::Array out = Napi::Array::New(env, answered.size() * 3);
  for (size_t i = 0; i < answered.size(); i++) {
    out.Set(i * 3, answered[i].pid);
    out.Set(i * 3 + 1, (double)answered[i].uid);
    out.Set(i * 3 + 2, (double)answered[i].waited_us);
  }
  return out;
}

void InitLaneQueue(Napi::Env env, Napi::Object exports) {
  exports.Set("laneAttach", Napi::Function::New(env, LaneAttachJs, "laneAttach"));
  exports.Set("laneTake", Napi::Function::New(env, LaneTakeJs, "laneTake"));
  exports.Set("laneFinish", Napi::Function::New(env, LaneFinishJs, "laneFinish"));
}

}  // namespace blessd
