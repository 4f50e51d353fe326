// Overview — the answer thread: JS's answers reach the kernel from here, not from the main thread.
//
// Why: writing a fanotify response wakes the blocked accessor, and on these VMs that wake-up (an IPI) made the
// write() the dearest call on the main thread (143 µs per cold file with the close of the event fd, V8 profile in
// docs/bench.md). answer() now only claims the event under mu_ (so the deadline, a second answer or close() cannot
// answer it too), counts it, and queues it; this thread writes the queued responses in FIFO order, closes their fds
// and drops their records. Waking a sleeping thread costs the waker about as much as the write did, so the main
// thread wakes it once per turn of its event loop (libuv check and prepare handles: after the I/O callbacks of a
// turn, and before the loop sleeps), not once per answer; a busy thread takes whole batches without being woken.
// If JS is stuck inside one turn, the reader thread kicks it when a queued answer's deadline comes (reader.cc).
//
// queueBless(fd) goes through the same queue: the ignore mark and the table entry of a passed file are written
// here too, before any answer queued after them, so that an accessor woken by its allow finds the verdict cached.
//
// Owns: the queued fds (each closed here after its answer or bless). Must not: answer anything it did not find
// claimed (queued) — the one answer of an event is decided under mu_, never here; hold answers_mu_ and mu_ at once.
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include "common/errors.h"
#include "fanotify/compat.h"
#include "fanotify/gate.h"

namespace blessd {

void Gate::QueueWork(const QueuedWork &w) {
  std::lock_guard<std::mutex> lock(answers_mu_);
  answers_.push_back(w);
  answers_waiting_.store(true, std::memory_order_release);
}

void Gate::KickAnswers() {
  if (!answers_waiting_.exchange(false, std::memory_order_acq_rel)) return;  // the common idle turn: no lock
  bool wake;
  {
    std::lock_guard<std::mutex> lock(answers_mu_);
    wake = answers_idle_ && !answers_.empty();
    if (wake) answers_idle_ = false;  // one wake-up per sleep
  }
  if (wake) answers_cv_.notify_one();
}

struct Gate::FlushHandles {
  uv_check_t check;
  uv_prepare_t prepare;
  Gate *gate;
};

// The handles are unreferenced: they never keep the process alive, they only run while something else does.
void Gate::StartFlush(Napi::Env env) {
  uv_loop_t *loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) throw Napi::Error::New(env, "gate: no event loop");
  flush_ = new FlushHandles();
  flush_->gate = this;
  flush_->check.data = flush_->prepare.data = flush_;
  uv_check_init(loop, &flush_->check);
  uv_prepare_init(loop, &flush_->prepare);
  uv_check_start(&flush_->check, [](uv_check_t *h) { static_cast<FlushHandles *>(h->data)->gate->KickAnswers(); });
  uv_prepare_start(&flush_->prepare, [](uv_prepare_t *h) { static_cast<FlushHandles *>(h->data)->gate->KickAnswers(); });
  uv_unref(reinterpret_cast<uv_handle_t *>(&flush_->check));
  uv_unref(reinterpret_cast<uv_handle_t *>(&flush_->prepare));
}

// Main thread. The handles are freed once the loop has closed both (or leaked at process exit, if it never runs).
void Gate::StopFlush() {
  if (!flush_) return;
  FlushHandles *f = flush_;
  flush_ = nullptr;
  uv_check_stop(&f->check);
  uv_prepare_stop(&f->prepare);
  f->gate = nullptr;
  uv_close(reinterpret_cast<uv_handle_t *>(&f->check), [](uv_handle_t *h) {
    auto *ff = static_cast<FlushHandles *>(h->data);
    uv_close(reinterpret_cast<uv_handle_t *>(&ff->prepare), [](uv_handle_t *hh) { delete static_cast<FlushHandles *>(hh->data); });
  });
}

static bool content_unchanged(const struct stat &st, const JudgedStamp &j) {
  return (int64_t)st.st_size == j.size && (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec == j.mtime_ns;
}

static bool unchanged(const struct stat &st, const JudgedStamp &j) {
  return content_unchanged(st, j) && (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec == j.ctime_ns;
}

// The conditional bless: a verdict judged on content that is gone must not become an ignore mark on the new one. The
// kernel refuses ignore bits while a writer holds the file open, not after it closed. What the judgement saw: size
// and mtime before the content was read (a write moves them), and ctime after our last tag write (anything that
// touches the inode after that moves it, a write with mtime put back included; multigrain timestamps make it move
// even within a tick, docs/kernel.md). Checked before the mark and again after it: a change in between takes the
// ignore bits off again (the mark stays: marks.cc). Left open: a whole write and close between the first check and
// the mark, and a read between the mark and the second check — microseconds, not the judgement's milliseconds.
bool Gate::BlessFd(int fd, bool &marked, const JudgedStamp &judged, bool *content_moved) {
  InodeKey key;
  marked = false;
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  key = InodeKey{(uint64_t)st.st_dev, (uint64_t)st.st_ino};
  if (judged.known && !unchanged(st, judged)) {
    c_.blesses_stale++;
    if (content_moved) *content_moved = !content_unchanged(st, judged);
    return false;
  }
  {
    // A denied file's open asks no more (its mark stays, not evictable: AddIgnoreBits adds to it as it is).
    std::lock_guard<std::mutex> lock(mu_);
    auto it = table_.find(key);
    if (it != table_.end()) DropDenyOpenMarkLocked(it->second, key, fd);
  }
  marked = AddIgnoreMark(fd);
  if (judged.known && (fstat(fd, &st) != 0 || !unchanged(st, judged))) {
    if (marked) RemoveIgnoreMark(fd, nullptr);
    marked = false;
    c_.blesses_stale++;
    if (content_moved) *content_moved = !content_unchanged(st, judged);
    return false;
  }
  VerdictEntry e = EntryOf(fd, Verdict::Allowed, FAN_ALLOW, &st);  // the stamp read above: no third fstat
  e.hit = !marked;  // no mark: the table is all that answers it, keep it through the next sweep
  std::lock_guard<std::mutex> lock(mu_);
  RememberLocked(key, std::move(e));
  return true;
}

// A bless found stale because the content moved (size or mtime: a write) — the judgement's verdict is about content
// that is gone. Its waiters' allows (queued after it, by concludeAllow) would serve what nobody scanned, in the moment
// before the change record reaches JS: every waiting event of the inode is flagged, and an allow for it is written
// as the retry answer (EAGAIN by default; the retried access finds nothing cached and is judged again). A ctime that
// moved alone is FlagWrittenSince's to decide. A later bless that is not stale clears the flags (flag = false).
// True if any event was flagged.
bool Gate::FlagStaleBless(int fd, bool flag) {
  InodeKey key;
  if (!key_of_fd(fd, key)) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto k = pending_keys_.find(key);
  if (k == pending_keys_.end()) return false;
  for (uint64_t id : k->second) {
    auto it = pending_.find(id);
    if (it != pending_.end()) it->second.stale_bless = flag;
  }
  return !k->second.empty();
}

// A bless stale by ctime alone: our own tag writes and a peer's lease move ctime, and so does a write whose mtime was
// put back (futimens). Such a write queued its modify record before it returned, so before the ctime we just read
// moved: once the reader thread has read the change group up to now, the inode's content sequence tells them apart.
// The waiting events read before that write are flagged; those read after it, and all of them when nothing was
// written, are not. A drain that does not end in time flags them all (fail closed). True if any event was flagged.
bool Gate::FlagWrittenSince(int fd) {
  InodeKey key;
  if (!key_of_fd(fd, key)) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto k = pending_keys_.find(key);
    if (k == pending_keys_.end() || k->second.empty()) return false;  // nobody waits: nothing to decide
  }
  c_.stale_drains++;
  const bool drained = DrainChanges();
  if (!drained) c_.stale_drain_timeouts++;
  std::lock_guard<std::mutex> lock(mu_);
  auto k = pending_keys_.find(key);
  if (k == pending_keys_.end()) return false;
  const uint32_t now = content_seq_[SeqBucket(key)];
  bool any = false;
  for (uint64_t id : k->second) {
    auto it = pending_.find(id);
    if (it == pending_.end() || (drained && it->second.content_seq == now)) continue;
    it->second.stale_bless = true;
    any = true;
  }
  return any;
}

// Answer thread. Wakes the reader thread and waits, bounded, until it has read the change group past this request
// (reader.cc Run). False if it did not in time, or the gate is stopping (nothing reads changes any more).
bool Gate::DrainChanges() {
  if (change_fd_ < 0) return true;  // no change group: no record to wait for
  if (stopping_) return false;
  const uint64_t mine = drain_asked_.fetch_add(1, std::memory_order_acq_rel) + 1;
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof one) < 0) { /* the eventfd's counter is full: the reader is awake anyway */ }
  std::unique_lock<std::mutex> lock(drain_mu_);
  drain_cv_.wait_for(lock, std::chrono::milliseconds(kDrainWaitMs), [&] { return drain_done_ >= mine || stopping_; });
  return drain_done_ >= mine;
}

uint32_t Gate::AllowOrRefusal(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(id);
  if (it == pending_.end() || !it->second.stale_bless) return FAN_ALLOW;
  c_.stale_allows_refused++;
  return overload_answer_;
}

void Gate::RunAnswers() {
  pthread_setname_np(pthread_self(), "blessd-answer");
  std::vector<QueuedWork> work;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(answers_mu_);
      while (answers_.empty() && !answers_stop_) {
        answers_idle_ = true;
        answers_cv_.wait(lock);
      }
      if (answers_.empty()) return;  // stopping, and everything written
      answers_idle_ = false;
      answers_waiting_.store(false, std::memory_order_relaxed);  // all of it is taken now
      work.swap(answers_);
    }
    // The writes first, outside every lock: each wakes its accessor, and the reader thread must not wait on mu_
    // meanwhile. The records stay in pending_ until then (their fds counted as held, never reused before the write).
    for (const QueuedWork &w : work) {
      if (w.id != 0) {
        // Allows are looked up only for a while after a stale bless (rare), whichever batch its answers land in.
        const bool check = w.response == FAN_ALLOW && now_ns() < stale_until_ns_.load(std::memory_order_relaxed);
        WriteResponse(w.fd, check ? AllowOrRefusal(w.id) : w.response);
        continue;
      }
      bool marked, content_moved = false;
      if (BlessFd(w.fd, marked, w.judged, &content_moved)) {
        // A later judgement of the same inode saw the content as it is now: its allows are good again.
        if (now_ns() < stale_until_ns_.load(std::memory_order_relaxed)) FlagStaleBless(w.fd, false);
      } else if (w.judged.known && (content_moved ? FlagStaleBless(w.fd, true) : FlagWrittenSince(w.fd))) {
        stale_until_ns_.store(now_ns() + kStaleBlessCheckNs, std::memory_order_relaxed);
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const QueuedWork &w : work) {
        if (w.id == 0) continue;
        auto it = pending_.find(w.id);
        if (it == pending_.end()) continue;
        UnindexPendingLocked(w.id, it->second.key);
        pending_.erase(it);
      }
    }
    for (const QueuedWork &w : work) close(w.fd);
    work.clear();
  }
}

// Called by Shutdown after the reader thread is gone: whatever JS answered is written with its own answer (a deny
// stays a deny) before the allow sweep answers the rest.
void Gate::StopAnswers() {
  {
    std::lock_guard<std::mutex> lock(answers_mu_);
    answers_stop_ = true;
  }
  StopFlush();
  answers_cv_.notify_one();
  if (answer_thread_.joinable()) answer_thread_.join();
}

// queueBless(fd, judged?): as bless(fd), on the answer thread, before every answer queued after it; with `judged`
// ({ size, mtimeNs, ctimeNs } as bigints: what the judgement saw, BlessFd), only if the file is as it was. The fd
// stays the caller's (a dup is queued). Throws if the fd cannot be duplicated.
Napi::Value Gate::QueueBless(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  JudgedStamp judged;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    Napi::Value size = o.Get("size"), mtime = o.Get("mtimeNs"), ctime = o.Get("ctimeNs");
    if (size.IsBigInt() && mtime.IsBigInt() && ctime.IsBigInt()) {
      bool lossless;
      judged.known = true;
      judged.size = size.As<Napi::BigInt>().Int64Value(&lossless);
      judged.mtime_ns = mtime.As<Napi::BigInt>().Int64Value(&lossless);
      judged.ctime_ns = ctime.As<Napi::BigInt>().Int64Value(&lossless);
    }
  }
  if (closed_) return env.Undefined();
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) throw errno_error(env, errno, "dup", "fd " + std::to_string(fd));
  QueueWork({0, own, 0, judged});
  return env.Undefined();
}

}  // namespace blessd
