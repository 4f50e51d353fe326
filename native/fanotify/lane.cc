// Overview — the worker-side conclusion of a cold file (stage A of the native cold lane, docs/bench.md).
//
// Why: a pool worker judges a cold file end to end (src/pool/judge-batch.ts) and the stack's answer is known there;
// sending it back to the main thread only for the bless and the answers cost that thread a wake-up and its share
// of every file. Here the worker does both from its own thread: the stamp-checked bless (answers.cc BlessFd) and
// the answers of the inode's waiting events (written from the worker itself, claimed under mu_ as JS's are). The main thread still gets
// the judgement for its bookkeeping (counters, costs, notices), and answers whatever waiter is left (an event that
// reached JS after the conclusion).
//
// What may be concluded here — anything else returns "not concluded" and the main thread decides as before, which
// is always safe (the file only takes the slower path):
//  - an allow (src/pool/judge-batch.ts asks only for a verdict of the stack that rests on no failure and leaves
//    nothing to the main thread); denies are the main thread's (logged there);
//  - under the lane epoch JS set (setLane: bumped at every stack change, 0 while stopping or disabled): a judgement
//    made with an older stack is not used;
//  - with the inode's change sequence unmoved since its first event was forwarded (a change record read by the
//    reader thread, a condemn, a forget-all bump it; JS's forgets do not, gate.cc says why): a change during the
//    judgement means no bless and no answer here;
//  - no Dirty or Denied verdict cached for the inode;
//  - a bless whose stamp check passed (the file is as the judgement saw it).
// Which events it answers: those of the inode that JS has been handed (Pending::delivered, set once onEvents has
// returned: JS no longer uses their fds) and that nobody answered yet. Each is claimed under mu_, exactly as
// answer() claims it, so the deadline, JS, or close() cannot answer it too.
//
// Reachable from every thread by the gate's lane id (a process-wide registry: the addon is one shared object, its
// statics shared by all Node environments). Shutdown unregisters first and waits for conclusions under way, so no
// worker touches a gate that is closing. Lock order: lanes_mu (registry) is never held with mu_; mu_ as elsewhere.
#include <sys/stat.h>
#include <unistd.h>
#include "fanotify/compat.h"
#include "fanotify/gate.h"

namespace blessd {

namespace {
std::mutex lanes_mu;
std::unordered_map<uint32_t, Gate *> lanes;
uint32_t next_lane = 1;
}  // namespace

// One conclusion in progress on a registered gate: Shutdown waits for it to end.
struct LaneUse {
  Gate *gate = nullptr;
  explicit LaneUse(uint32_t id) {
    std::lock_guard<std::mutex> lock(lanes_mu);
    auto it = lanes.find(id);
    if (it == lanes.end()) return;
    gate = it->second;
    std::lock_guard<std::mutex> users(gate->lane_users_mu_);
    gate->lane_users_++;
  }
  ~LaneUse() {
    if (!gate) return;
    std::lock_guard<std::mutex> users(gate->lane_users_mu_);
    if (--gate->lane_users_ == 0) gate->lane_users_cv_.notify_all();
  }
};

// lane_queue.cc's way in from a worker: the gate of this lane id, held (Shutdown waits) until LaneGateDone.
Gate *LaneGateUse(uint32_t lane, void *&token) {
  auto *use = new LaneUse(lane);
  if (!use->gate) {
    delete use;
    token = nullptr;
    return nullptr;
  }
  token = use;
  return use->gate;
}

void LaneGateDone(void *token) { delete static_cast<LaneUse *>(token); }

void Gate::LaneRegister() {
  std::lock_guard<std::mutex> lock(lanes_mu);
  lane_id_ = next_lane++;
  lanes[lane_id_] = this;
}

void Gate::LaneUnregister() {
  {
    std::lock_guard<std::mutex> lock(lanes_mu);
    lanes.erase(lane_id_);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    lane_epoch_ = 0;
  }
  std::unique_lock<std::mutex> users(lane_users_mu_);
  lane_users_cv_.wait(users, [this] { return lane_users_ == 0; });
}

void Gate::IndexPendingLocked(uint64_t id, const InodeKey &key) { pending_keys_[key].push_back(id); }

void Gate::UnindexPendingLocked(uint64_t id, const InodeKey &key) {
  auto p = pending_.find(id);
  if (p != pending_.end() && p->second.js) JsLetGoLocked(key);  // lane_queue.cc: one event fewer that JS holds
  auto it = pending_keys_.find(key);
  if (it == pending_keys_.end()) return;
  auto &ids = it->second;
  for (size_t i = 0; i < ids.size(); i++) {
    if (ids[i] == id) {
      ids[i] = ids.back();
      ids.pop_back();
      break;
    }
  }
  if (ids.empty()) pending_keys_.erase(it);
}

// Main thread, after onEvents returned for this batch.
void MarkDelivered(uint32_t lane, const std::vector<OutEvent> &batch) {
  LaneUse use(lane);
  if (!use.gate) return;  // closing or closed: Shutdown answers what is pending
  std::lock_guard<std::mutex> lock(use.gate->mu_);
  for (const OutEvent &e : batch) {
    if (e.kind != EventKind::Perm) continue;
    auto it = use.gate->pending_.find(e.id);
    if (it != use.gate->pending_.end()) it->second.delivered = true;
  }
}

Gate::LaneEnd Gate::LaneConclude(uint32_t epoch, uint32_t seq, int fd, const JudgedStamp &judged, std::vector<uint64_t> &answered) {
  InodeKey key;
  if (!judged.known || !key_of_fd(fd, key)) return LaneEnd::Declined;
  // Under mu_: what stands in the way now (the epoch first: a judgement of an older stack is no judgement at all).
  auto check = [&]() {
    if (lane_epoch_ == 0 || lane_epoch_ != epoch) return LaneEnd::Declined;
    if (change_seq_[SeqBucket(key)] != seq) return LaneEnd::Changed;
    auto t = table_.find(key);
    if (t == table_.end() || t->second.verdict == Verdict::Allowed) return LaneEnd::Concluded;
    return t->second.verdict == Verdict::Dirty ? LaneEnd::Changed : LaneEnd::Declined;
  };
  {
    std::lock_guard<std::mutex> lock(mu_);
    LaneEnd now = check();
    if (now != LaneEnd::Concluded) {
      c_.lane_declined++;
      return now;
    }
  }
  // The bless first (as a queued bless precedes the answers queued after it): an accessor woken by its allow finds
  // the verdict cached. Stale (the file moved since the judgement): nothing cached, nothing answered here.
  bool marked = false;
  if (!BlessFd(fd, marked, judged)) {
    c_.lane_declined++;
    return LaneEnd::Changed;
  }
  std::vector<std::pair<uint64_t, int>> work;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A change read while the bless was under way: the main thread decides (its bless is checked again, and the
    // change record has dropped what this one cached if it came after it).
    LaneEnd now = check();
    if (now != LaneEnd::Concluded) {
      c_.lane_declined++;
      return now;
    }
    auto k = pending_keys_.find(key);
    if (k != pending_keys_.end()) {
      const int64_t now = now_ns();
      for (uint64_t id : k->second) {
        auto it = pending_.find(id);
        if (it == pending_.end()) continue;
        Pending &p = it->second;
        if (!p.delivered || p.answered || p.queued) continue;
        p.answered = p.queued = true;  // claimed: nobody else answers or closes it; written and dropped below
        c_.by_js++;
        c_.latency[latency_bucket((now - p.forwarded_ns) / 1000)]++;
        auto u = pending_by_uid_.find(p.uid);
        if (u != pending_by_uid_.end() && --u->second == 0) pending_by_uid_.erase(u);
        work.emplace_back(id, p.fd);
        answered.push_back(id);
      }
      if (!work.empty()) budgets_.erase(key);
    }
  }
  WriteLaneAllows(work);
  c_.lane_concluded++;
  c_.lane_answered += work.size();
  return LaneEnd::Concluded;
}

// The allows a worker concludes (here and lane_queue.cc), written as the answer thread writes JS's (answers.cc
// RunAnswers): outside mu_, then the records dropped and the fds closed. Not handed to the answer thread: waking it
// costs a worker as much as the write itself (measured, docs/bench.md), and this thread is no event loop that must
// stay free. `work`: (event id, its fd), claimed under mu_ by the caller.
void Gate::WriteLaneAllows(const std::vector<std::pair<uint64_t, int>> &work) {
  for (auto &w : work) WriteResponse(w.second, FAN_ALLOW);
  if (!work.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto &w : work) {
      auto it = pending_.find(w.first);
      if (it == pending_.end()) continue;
      UnindexPendingLocked(w.first, it->second.key);
      pending_.erase(it);
    }
  }
  for (auto &w : work) close(w.second);
}

Napi::Value Gate::LaneId(const Napi::CallbackInfo &info) { return Napi::Number::New(info.Env(), lane_id_); }

// setLane(epoch): the stack epoch workers' conclusions must carry; 0 turns them off.
Napi::Value Gate::SetLane(const Napi::CallbackInfo &info) {
  uint32_t epoch = info[0].As<Napi::Number>().Uint32Value();
  std::lock_guard<std::mutex> lock(mu_);
  lane_epoch_ = closed_ ? 0 : epoch;
  return info.Env().Undefined();
}

// laneConclude(laneId, epoch, seq, fd, size, mtimeNs, ctimeNs): from any thread's env. Null: not concluded (the
// main thread decides); false: not concluded, the file changed since it was judged; else the ids of the events it
// answered allow.
static Napi::Value LaneConcludeJs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7) throw Napi::TypeError::New(env, "laneConclude(laneId, epoch, seq, fd, size, mtimeNs, ctimeNs): 7 arguments");
  uint32_t lane = info[0].As<Napi::Number>().Uint32Value();
  uint32_t epoch = info[1].As<Napi::Number>().Uint32Value();
  uint32_t seq = info[2].As<Napi::Number>().Uint32Value();
  int fd = info[3].As<Napi::Number>().Int32Value();
  JudgedStamp judged;
  bool lossless;
  if (!info[4].IsBigInt() || !info[5].IsBigInt() || !info[6].IsBigInt()) throw Napi::TypeError::New(env, "laneConclude: size, mtimeNs and ctimeNs must be bigints");
  judged.known = true;
  judged.size = info[4].As<Napi::BigInt>().Int64Value(&lossless);
  judged.mtime_ns = info[5].As<Napi::BigInt>().Int64Value(&lossless);
  judged.ctime_ns = info[6].As<Napi::BigInt>().Int64Value(&lossless);
  std::vector<uint64_t> answered;
  Gate::LaneEnd end;
  {
    LaneUse use(lane);
    if (!use.gate) return env.Null();
    end = use.gate->LaneConclude(epoch, seq, fd, judged, answered);
  }
  if (end == Gate::LaneEnd::Declined) return env.Null();
  if (end == Gate::LaneEnd::Changed) return Napi::Boolean::New(env, false);
  Napi::Array out = Napi::Array::New(env, answered.size());
  for (size_t i = 0; i < answered.size(); i++) out.Set(i, (double)answered[i]);
  return out;
}

void InitLane(Napi::Env env, Napi::Object exports) { exports.Set("laneConclude", Napi::Function::New(env, LaneConcludeJs, "laneConclude")); }

}  // namespace blessd
