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

static int64_t ctime_ns_of(const struct stat &st) { return (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec; }

// The conditional bless: a verdict judged on content that is gone must not become an ignore mark on the new one. The
// kernel refuses ignore bits while a writer holds the file open; a writer that came and closed since the judgement
// began moved ctime (multigrain timestamps: the judgement's fstat makes the next change visible, docs/kernel.md). So
// ctime is checked before the mark and again after it: a change in between takes the ignore bits off again (the
// mark stays: marks.cc). Left open: a whole write and close between the first check and the mark, and a read
// between the mark and the second check — a few microseconds, not the scan's milliseconds.
void Gate::BlessFd(int fd, bool &marked, int64_t judged_ctime_ns) {
  InodeKey key;
  marked = false;
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  key = InodeKey{(uint64_t)st.st_dev, (uint64_t)st.st_ino};
  if (judged_ctime_ns != 0 && ctime_ns_of(st) != judged_ctime_ns) {
    c_.blesses_stale++;
    return;
  }
  {
    // A denied file's open asks no more (its mark stays, not evictable: AddIgnoreBits adds to it as it is).
    std::lock_guard<std::mutex> lock(mu_);
    auto it = table_.find(key);
    if (it != table_.end()) DropDenyOpenMarkLocked(it->second, key, fd);
  }
  marked = AddIgnoreMark(fd);
  if (judged_ctime_ns != 0 && (fstat(fd, &st) != 0 || ctime_ns_of(st) != judged_ctime_ns)) {
    if (marked) RemoveIgnoreMark(fd, nullptr);
    marked = false;
    c_.blesses_stale++;
    return;
  }
  VerdictEntry e = EntryOf(fd, Verdict::Allowed, FAN_ALLOW, judged_ctime_ns != 0 ? &st : nullptr);
  e.hit = !marked;  // no mark: the table is all that answers it, keep it through the next sweep
  std::lock_guard<std::mutex> lock(mu_);
  RememberLocked(key, std::move(e));
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
        WriteResponse(w.fd, w.response);
        continue;
      }
      bool marked;
      BlessFd(w.fd, marked, w.judged_ctime_ns);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const QueuedWork &w : work)
        if (w.id != 0) pending_.erase(w.id);
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

// queueBless(fd, judgedCtimeNs?): as bless(fd), on the answer thread, before every answer queued after it; with the
// file's ctime (a bigint, ns) from when its judgement began, only if the file has not changed since (BlessFd). The fd
// stays the caller's (a dup is queued). Throws if the fd cannot be duplicated.
Napi::Value Gate::QueueBless(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int64_t judged = 0;
  if (info.Length() > 1 && info[1].IsBigInt()) {
    bool lossless;
    judged = info[1].As<Napi::BigInt>().Int64Value(&lossless);
  }
  if (closed_) return env.Undefined();
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) throw errno_error(env, errno, "dup", "fd " + std::to_string(fd));
  QueueWork({0, own, 0, judged});
  return env.Undefined();
}

}  // namespace blessd
