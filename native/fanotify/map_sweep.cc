// Overview — the shared-mapping sweep, on its own native thread. A file that was blessed (silent: an ignore mark)
// before someone opened it for write and mapped it MAP_SHARED + PROT_WRITE raised no event at all, and its stores
// raise none either: other processes read whatever is stored until munmap (docs/kernel.md, exp11). Nothing in
// fanotify tells; /proc does. Every period this thread reads /proc/<pid>/maps of every other process and follows each
// shared writable mapping of a file on a guarded device (FlagSharedMapPath: its ignore mark goes, every access is
// judged anew), then lets go of the inodes no sweep found any more (PruneSharedMapsBefore).
//
// Why a native thread: the sweep used to run on the main thread (async reads of every maps file, each a thread-pool
// round trip and a wake-up of the event loop), which the cold-path profile put at ~30 µs of main-thread CPU per
// new file under load (docs/bench.md, "Main thread, session 5"). Here it costs JS nothing.
//
// Owns: its thread and its control block. The control block is shared with the thread (std::shared_ptr) and holds the
// only pointer the thread has to the gate: StopMapSweep clears it under the block's mutex, so a thread still stuck
// in a read of some process's maps (which can wait on that process's mmap lock) is detached after a bound rather than
// joined, and never touches the gate again. Lock order: the block's mutex, then mu_ (inside the gate's calls).
// Must not: open a mapped file (the map_files link is resolved by stat and fanotify_mark, no open, no event), look at
// our own process, or hold up Shutdown for longer than its bound.
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include "fanotify/gate.h"

namespace blessd {

struct Gate::MapSweepControl {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool exited = false;
  std::atomic<bool> stopping{false};  // read between reads, without the mutex
  Gate *gate = nullptr;               // null once StopMapSweep let go: the thread leaves without touching it
  int64_t period_ns = 0;
  std::unordered_set<uint64_t> devs;
  int32_t own_pid = 0;
};

namespace {

// The whole of one /proc/<pid>/maps (size 0 in stat: read until EOF). False: gone, or not ours to read.
bool read_maps(const char *pid, std::string &out, std::vector<char> &buf) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/maps", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf.data(), (size_t)n);
  }
  close(fd);
  return true;
}

// Calls found(range) for each shared writable mapping ("lo-hi rw-s offset major:minor inode path") of a file on one
// of `devs`. Most lines are private mappings: the two perm letters are looked at before anything is parsed.
template <typename F>
void shared_writable(const std::string &maps, const std::unordered_set<uint64_t> &devs, F found) {
  size_t at = 0;
  while (at < maps.size()) {
    size_t end = maps.find('\n', at);
    if (end == std::string::npos) end = maps.size();
    const char *line = maps.data() + at;
    size_t len = end - at;
    at = end + 1;
    const char *sp = (const char *)memchr(line, ' ', len);
    if (!sp || (size_t)(sp - line) + 5 > len || sp[2] != 'w' || sp[4] != 's') continue;
    // offset, then major:minor (hex), then the inode (decimal)
    const char *p = sp + 6;
    const char *limit = line + len;
    while (p < limit && *p != ' ') p++;  // offset
    if (p >= limit) continue;
    char *q;
    unsigned long major = strtoul(p + 1, &q, 16);
    if (*q != ':') continue;
    unsigned long minor = strtoul(q + 1, &q, 16);
    if (*q != ' ') continue;
    unsigned long long ino = strtoull(q + 1, &q, 10);
    if (ino == 0 || !devs.count((uint64_t)makedev(major, minor))) continue;
    found(std::string(line, (size_t)(sp - line)));
  }
}

}  // namespace

// sharedMapSweep({ periodMs, devs }): sweep now and every periodMs, for files on these devices (st_dev numbers).
// Called again, it only takes the new devices and period.
Napi::Value Gate::SharedMapSweep(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "gate: closed");
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "gate: sharedMapSweep options object required");
  Napi::Object o = info[0].As<Napi::Object>();
  double period = o.Get("periodMs").IsNumber() ? o.Get("periodMs").As<Napi::Number>().DoubleValue() : 0;
  if (!(period >= 1 && period <= 86400000)) throw Napi::RangeError::New(env, "gate: sharedMapSweep periodMs must be from 1 to 86400000");
  if (!o.Get("devs").IsArray()) throw Napi::TypeError::New(env, "gate: sharedMapSweep devs must be an array of device numbers");
  Napi::Array arr = o.Get("devs").As<Napi::Array>();
  std::unordered_set<uint64_t> devs;
  for (uint32_t i = 0; i < arr.Length(); i++) devs.insert((uint64_t)arr.Get(i).As<Napi::Number>().Int64Value());
  if (!map_sweep_) {
    map_sweep_ = std::make_shared<MapSweepControl>();
    map_sweep_->gate = this;
    map_sweep_->own_pid = own_pid_;
  }
  {
    std::lock_guard<std::mutex> lock(map_sweep_->mu);
    map_sweep_->devs = std::move(devs);
    map_sweep_->period_ns = (int64_t)(period * 1e6);
    map_sweep_->cv.notify_all();
  }
  if (!map_sweep_thread_.joinable()) {
    std::shared_ptr<MapSweepControl> ctl = map_sweep_;
    map_sweep_thread_ = std::thread([ctl] { MapSweepRun(ctl); });
  }
  return env.Undefined();
}

void Gate::MapSweepRun(std::shared_ptr<MapSweepControl> ctl) {
  pthread_setname_np(pthread_self(), "blessd-mapsweep");
  std::vector<char> buf(1 << 16);
  std::string maps;
  for (;;) {
    std::unordered_set<uint64_t> devs;
    int64_t started;
    {
      std::lock_guard<std::mutex> lock(ctl->mu);
      if (ctl->stop || !ctl->gate) break;
      devs = ctl->devs;
      started = now_ns();
    }
    uint64_t processes = 0, mappings = 0;
    DIR *proc = devs.empty() ? nullptr : opendir("/proc");
    bool whole = proc != nullptr;
    while (proc) {
      struct dirent *de = readdir(proc);
      if (!de) break;
      if (de->d_name[0] < '0' || de->d_name[0] > '9' || atoi(de->d_name) == ctl->own_pid) continue;
      bool read = read_maps(de->d_name, maps, buf);
      if (ctl->stopping.load(std::memory_order_relaxed)) {
        whole = false;
        break;
      }
      if (!read) continue;  // gone, or a kernel thread
      processes++;
      // Nearly every process has no shared writable mapping: two substring searches skip it.
      if (maps.find("w-s ") == std::string::npos && maps.find("wxs ") == std::string::npos) continue;
      shared_writable(maps, devs, [&](const std::string &range) {
        mappings++;
        std::string link = std::string("/proc/") + de->d_name + "/map_files/" + range;
        std::lock_guard<std::mutex> lock(ctl->mu);
        if (ctl->gate) ctl->gate->FlagSharedMapPath(link.c_str());
      });
    }
    if (proc) closedir(proc);
    {
      std::unique_lock<std::mutex> lock(ctl->mu);
      if (!ctl->gate) break;
      // Every process was looked at after `started`: an inode followed since before it and not found is unmapped
      // (one mapped meanwhile was either found, or seen by the reader thread after `started`).
      if (whole) {
        ctl->gate->PruneSharedMapsBefore(started);
        ctl->gate->c_.map_sweeps++;
        ctl->gate->c_.map_sweep_processes = processes;
        ctl->gate->c_.map_sweep_mappings = mappings;
        ctl->gate->c_.map_sweep_us = (uint64_t)((now_ns() - started) / 1000);
      }
      ctl->cv.wait_for(lock, std::chrono::nanoseconds(ctl->period_ns), [&] { return ctl->stop; });
      if (ctl->stop) break;
    }
  }
  std::lock_guard<std::mutex> lock(ctl->mu);
  ctl->exited = true;
  ctl->cv.notify_all();
}

// Shutdown: the thread ends within a second, or is left behind (detached, its gate pointer gone) if a read of some
// process's maps holds it: a stop must not wait on a process.
void Gate::StopMapSweep() {
  if (!map_sweep_) return;
  std::shared_ptr<MapSweepControl> ctl = std::move(map_sweep_);
  bool exited;
  {
    std::unique_lock<std::mutex> lock(ctl->mu);
    ctl->stop = true;
    ctl->stopping = true;
    ctl->cv.notify_all();
    exited = ctl->cv.wait_for(lock, std::chrono::seconds(1), [&] { return ctl->exited; });
    ctl->gate = nullptr;
  }
  if (exited) map_sweep_thread_.join();
  else map_sweep_thread_.detach();
}

}  // namespace blessd
