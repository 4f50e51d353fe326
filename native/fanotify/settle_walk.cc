// Overview — the settle walk: a background native thread that, after a start (and after every forget of the whole
// verdict table: JS's forgetAll, a queue overflow), walks the guarded trees and filesystems and does for each
// regular file whose valid tags already settle its verdict what its first access would have done on the reader
// thread (tag_settle.cc): allowed → the evictable ignore mark and the table entry; denied → the table entry. Then
// that first access raises no event at all (allowed), or is refused at once from the table (denied).
//
// Owns: its thread, its counters, the order of the walk. Must not:
//  - wait for an event nobody answers: its own opens raise FAN_OPEN_PERM where that is marked, and the reader thread
//    answers them at once (same process, IsOwn); so Shutdown stops this thread before the reader's;
//  - open anything but a regular file (an O_PATH look first, then a re-open of that very inode through
//    /proc/self/fd), follow a symlink or cross a mount (openat2 RESOLVE_BENEATH | NO_SYMLINKS | NO_XDEV), or
//    touch atime (O_NOATIME);
//  - bless a file that changed: the tags are judged against the file's stamp exactly as on the reader thread, the
//    stamp is read again after the ignore mark is in place (a change in between removes the mark: the kernel's
//    multigrain timestamps make any change after our stat visible), and an inode the table already knows — dirty
//    from a queued change, settled by an access, shared-mapped — is left alone;
//  - compete with accessors: it pauses while any forwarded event waits for JS, and keeps to filesPerSecond.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include "fanotify/compat.h"
#include "fanotify/gate.h"
#include "tags/js.h"
#include "tags/settle.h"

namespace blessd {

namespace {
struct linux_dirent64_hdr {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

constexpr uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;

int open_beneath(int dirfd, const char *name, uint64_t flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = flags | O_CLOEXEC | O_NOFOLLOW;
  how.resolve = kResolve;
  int fd;
  do fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  return fd;
}
}  // namespace

// settleWalk({ filesPerSecond }): turn the walk on (it walks now, and again after every forget of the table).
Napi::Value Gate::SettleWalk(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "gate: closed");
  double fps = 1000;
  if (info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    if (o.Has("filesPerSecond") && !o.Get("filesPerSecond").IsUndefined()) fps = o.Get("filesPerSecond").As<Napi::Number>().DoubleValue();
  }
  if (!(fps >= 1 && fps <= 1e7)) throw Napi::RangeError::New(env, "gate: settleWalk filesPerSecond must be from 1 to 10000000");
  {
    std::lock_guard<std::mutex> lock(walk_mu_);
    walk_.interval_ns = (int64_t)(1e9 / fps);
    walk_.enabled = true;
    if (!walk_thread_.joinable()) walk_thread_ = std::thread([this] { SettleWalkRun(); });
  }
  RequestSettleWalk();
  return env.Undefined();
}

// The table was forgotten whole: walk again (a walk under way starts over). Nothing if the walk is off.
// Called with or without mu_ held (takes walk_mu_ only, never mu_ under it).
void Gate::RequestSettleWalk() {
  std::lock_guard<std::mutex> lock(walk_mu_);
  if (!walk_.enabled) return;
  walk_.requested++;
  w_.state = 1;  // from now until that walk is through: not done
  walk_cv_.notify_all();
}

void Gate::StopSettleWalk() {
  {
    std::lock_guard<std::mutex> lock(walk_mu_);
    walk_.stop = true;
    walk_cv_.notify_all();
  }
  if (walk_thread_.joinable()) walk_thread_.join();
}

// Waits `ns` (0: none) unless the walk must stop or start over. False: leave the current walk.
bool Gate::WalkWait(int64_t ns, uint64_t run) {
  std::unique_lock<std::mutex> lock(walk_mu_);
  if (ns > 0)
    walk_cv_.wait_for(lock, std::chrono::nanoseconds(ns), [&] { return walk_.stop || walk_.requested != run; });
  return !walk_.stop && walk_.requested == run;
}

void Gate::SettleWalkRun() {
  pthread_setname_np(pthread_self(), "blessd-walk");
  uint64_t done = 0;  // the last request walked through
  for (;;) {
    uint64_t run;
    {
      std::unique_lock<std::mutex> lock(walk_mu_);
      walk_cv_.wait(lock, [&] { return walk_.stop || walk_.requested != done; });
      if (walk_.stop) return;
      run = walk_.requested;
    }
    w_.state = 1;
    w_.runs++;
    bool have_policy;
    {
      std::lock_guard<std::mutex> lock(mu_);
      have_policy = tag_policy_ != nullptr;
    }
    if (!have_policy) {
      // Content stamps, or no stack yet: no tag settles anything here, every file waits for its access anyway.
      done = run;
      w_.completed++;
      w_.state = 2;
      continue;
    }
    // The places to walk, each as a directory fd of our own: tree roots, or the guard path of a filesystem guard.
    std::vector<int> roots;
    {
      std::lock_guard<std::mutex> lock(mu_);  // mu_ before trees_mu_, as everywhere
      std::lock_guard<std::mutex> tlock(trees_mu_);
      for (auto &kv : guarded_) {
        if (kv.second.whole) {
          auto m = mount_fd_by_dev_.find(kv.first);
          if (m != mount_fd_by_dev_.end()) roots.push_back(fcntl(m->second, F_DUPFD_CLOEXEC, 0));
        } else {
          for (auto &r : kv.second.roots) roots.push_back(fcntl(r.fd, F_DUPFD_CLOEXEC, 0));
        }
      }
    }
    bool whole = true;
    for (int root : roots) {
      if (root < 0) continue;
      if (whole && !SettleWalkTree(root, run)) whole = false;
      close(root);
    }
    if (whole) {
      done = run;
      w_.completed++;
      w_.state = 2;
    } else {
      std::lock_guard<std::mutex> lock(walk_mu_);
      if (walk_.stop) return;
      // Started over: the loop takes the new request (done stays behind it).
    }
  }
}

// One guarded root, breadth-first by paths relative to it (no descriptor per pending directory). False: stopped or
// restarted meanwhile.
bool Gate::SettleWalkTree(int root, uint64_t run) {
  std::vector<std::string> dirs{"."};
  std::vector<char> buf(64 * 1024);
  int64_t next_ns = now_ns();
  while (!dirs.empty()) {
    std::string rel = std::move(dirs.back());
    dirs.pop_back();
    // "." too is opened afresh: a dup of the root would share its offset, and the next walk would find it at the end.
    int dfd = open_beneath(root, rel.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd < 0) {
      if (errno == EXDEV || errno == ELOOP) w_.skipped++;  // a mount point or a symlink on the way: not ours to walk
      else w_.errors++;
      continue;
    }
    for (;;) {
      long n = syscall(SYS_getdents64, dfd, buf.data(), buf.size());
      if (n <= 0) {
        if (n < 0) w_.errors++;
        break;
      }
      for (long off = 0; off < n;) {
        auto *d = reinterpret_cast<linux_dirent64_hdr *>(buf.data() + off);
        off += d->d_reclen;
        const char *name = d->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        std::string child = rel == "." ? std::string(name) : rel + "/" + name;
        if (d->d_type == DT_DIR) {
          dirs.push_back(std::move(child));
          continue;
        }
        if (d->d_type != DT_REG && d->d_type != DT_UNKNOWN) {
          w_.skipped++;  // symlinks, devices, fifos, sockets: never opened
          continue;
        }
        // Paced, and out of the way of anyone waiting for a verdict.
        int64_t now = now_ns();
        if (next_ns > now && !WalkWait(next_ns - now, run)) {
          close(dfd);
          return false;
        }
        for (;;) {
          size_t waiting;
          {
            std::lock_guard<std::mutex> lock(mu_);
            waiting = pending_.size();
          }
          if (waiting == 0) break;
          w_.paused_ms += 5;
          if (!WalkWait(5000000, run)) {
            close(dfd);
            return false;
          }
        }
        if (!WalkWait(0, run)) {
          close(dfd);
          return false;
        }
        now = now_ns();
        next_ns = std::max<int64_t>(next_ns, now - 1000000000LL) + walk_.interval_ns.load();
        int pfd = open_beneath(dfd, name, O_PATH);
        struct stat st;
        if (pfd < 0 || fstat(pfd, &st) != 0) {
          if (pfd >= 0) close(pfd);
          if (errno == EXDEV || errno == ELOOP) w_.skipped++;
          else w_.errors++;  // vanished meanwhile
          continue;
        }
        if (S_ISDIR(st.st_mode)) {
          close(pfd);
          dirs.push_back(std::move(child));
          continue;
        }
        if (!S_ISREG(st.st_mode)) {
          close(pfd);
          w_.skipped++;
          continue;
        }
        // The inode the O_PATH look found, opened for real: no second lookup by name that a rename could redirect.
        char link[40];
        snprintf(link, sizeof link, "/proc/self/fd/%d", pfd);
        int fd = open(link, O_RDONLY | O_NOATIME | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        close(pfd);
        if (fd < 0) {
          w_.errors++;
          continue;
        }
        w_.walked++;
        SettleWalkFile(fd);
        close(fd);
      }
    }
    close(dfd);
  }
  return true;
}

// One regular file: settle it from its tags as the reader thread would at its first access, or leave it be.
void Gate::SettleWalkFile(int fd) {
  struct stat st0;
  if (fstat(fd, &st0) != 0) {
    w_.errors++;
    return;
  }
  InodeKey key{(uint64_t)st0.st_dev, (uint64_t)st0.st_ino};
  std::shared_ptr<const GateTagPolicy> policy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    policy = tag_policy_;
    // Known already: settled by an access, dirty from a change the reader has read, or shared-mapped (judged at
    // every access). The reader's answer stands.
    if (table_.count(key) || shared_maps_.count(key)) {
      w_.known++;
      return;
    }
  }
  if (!policy) {
    w_.unsettled++;
    return;
  }
  struct stat st;
  uint32_t gen = 0;
  Settlement s = settle_by_tags(fd, *policy, wall_clock_ms(), &st, &gen);
  if (s == Settlement::Unknown) {
    w_.unsettled++;  // stale, missing or undecided tags: judged at its access
    return;
  }
  if (s == Settlement::Denied) {
    VerdictEntry e = EntryOf(fd, Verdict::Denied, policy->deny_response, &st, gen);
    std::lock_guard<std::mutex> lock(mu_);
    if (table_.count(key) || shared_maps_.count(key)) {
      w_.known++;
      return;
    }
    e.open_marked = AddDenyOpenMarkLocked(fd, key);  // refused at open too, as a deny settled at an access (marks.cc)
    RememberLocked(key, std::move(e));
    w_.denied++;
    return;
  }
  VerdictEntry e = EntryOf(fd, Verdict::Allowed, FAN_ALLOW, &st, gen);
  bool marked = AddIgnoreMark(fd);
  e.hit = !marked;  // no mark: the table is all that answers it, keep it through the next sweep
  // A change after settle_by_tags's stat and before the mark: its modify record may already have been read (and
  // found no mark to drop), so the mark would outlive it. The stamp tells (multigrain ctime on ext4/xfs/btrfs/tmpfs).
  struct stat st2;
  if (fstat(fd, &st2) != 0 || !same_full_stamp(e, st2)) {
    if (marked) RemoveIgnoreMark(fd, nullptr);
    w_.changed++;
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (table_.count(key) || shared_maps_.count(key)) {
    // A change record (dirty), an access or the map sweep got there first: theirs stands, and a dirty inode keeps
    // no mark of ours.
    auto it = table_.find(key);
    if (marked && (it == table_.end() || it->second.verdict != Verdict::Allowed)) RemoveIgnoreMark(fd, nullptr);
    w_.known++;
    return;
  }
  RememberLocked(key, std::move(e));
  w_.allowed++;
}

Napi::Object Gate::SettleWalkStats(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  bool enabled;
  {
    std::lock_guard<std::mutex> lock(walk_mu_);
    enabled = walk_.enabled;
    o.Set("filesPerSecond", walk_.interval_ns > 0 ? 1e9 / (double)walk_.interval_ns : 0);
  }
  static const char *states[] = {"idle", "walking", "done"};
  o.Set("state", enabled ? states[w_.state.load()] : "off");
  o.Set("runs", (double)w_.runs);
  o.Set("completed", (double)w_.completed);
  o.Set("walked", (double)w_.walked);
  o.Set("settledAllowed", (double)w_.allowed);
  o.Set("settledDenied", (double)w_.denied);
  o.Set("unsettled", (double)w_.unsettled);
  o.Set("known", (double)w_.known);
  o.Set("changed", (double)w_.changed);
  o.Set("skipped", (double)w_.skipped);
  o.Set("errors", (double)w_.errors);
  o.Set("pausedMs", (double)w_.paused_ms);
  return o;
}

}  // namespace blessd
