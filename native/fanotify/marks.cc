// fanotify_mark: what the gate watches (filesystems, mounts), the verdict cache's ignore and deny marks, and the
// unmark thread that clears them all in place when every verdict is forgotten.
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <cstdio>
#include <cstring>
#include "common/errors.h"
#include "fanotify/compat.h"
#include "fanotify/gate.h"

namespace blessd {

std::string fsid_hex(const void *fsid) {
  const int32_t *v = static_cast<const int32_t *>(fsid);
  char buf[24];
  snprintf(buf, sizeof buf, "%08x%08x", (uint32_t)v[0], (uint32_t)v[1]);
  return buf;
}

// Keep one descriptor per guarded filesystem: open_by_handle_at needs it to turn the change group's handles into
// inodes. It must be a real open (open_by_handle_at refuses O_PATH here, EBADF); a directory open raises no event
// (no FAN_ONDIR in our masks). The reader thread itself only ever opens O_PATH, which raises none either.
void Gate::RememberFilesystem(const std::string &path) {
  struct statfs sfs;
  struct stat st;
  if (statfs(path.c_str(), &sfs) != 0 || stat(path.c_str(), &st) != 0) return;
  std::string fsid = fsid_hex(&sfs.f_fsid);
  std::lock_guard<std::mutex> lock(mu_);
  if (filesystems_.count(fsid)) return;
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  filesystems_[fsid] = FsInfo{(uint64_t)st.st_dev, fd};
  mount_fd_by_dev_[(uint64_t)st.st_dev] = fd;
}

// markX(path, mode) / unmarkX(path). A read-mode mark needs pre-content events; where the filesystem (tmpfs,
// overlayfs) or the kernel (< 6.14) has none, the mark falls back to open mode and says why.
Napi::Value Gate::Mark(const Napi::CallbackInfo &info, unsigned int kind_flags, bool add) {
  Napi::Env env = info.Env();
  if (closed_) throw Napi::Error::New(env, "gate: closed");
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "gate: mark path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  // No directory marks: every inode mark of the gate group is one of ours (ignore and deny marks), which a forget-all
  // clears without asking which (RunUnmark).
  const unsigned int child = 0, only_dir = 0;
  uint64_t change_mask = kind_flags == FAN_MARK_MOUNT ? kChangeMaskMount : kChangeMaskFs;

  if (!add) {
    // Remove both modes' bits: a path may have been marked in either.
    int r = fanotify_mark(gate_fd_, FAN_MARK_REMOVE | kind_flags | only_dir, kReadModeMask | kOpenModeMask | child, AT_FDCWD, path.c_str());
    if (r != 0 && errno != ENOENT) throw errno_error(env, errno, "fanotify_mark(remove)", path);
    if (change_fd_ >= 0) fanotify_mark(change_fd_, FAN_MARK_REMOVE | kind_flags | only_dir, change_mask | (kind_flags == FAN_MARK_FILESYSTEM ? kTreeChangeMask : 0) | child, AT_FDCWD, path.c_str());
    return env.Undefined();
  }

  std::string mode = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "read";
  if (mode != "read" && mode != "open") throw Napi::TypeError::New(env, "gate: mark mode must be 'read' or 'open'");
  std::string fallback;
  if (mode == "read") {
    if (fanotify_mark(gate_fd_, FAN_MARK_ADD | kind_flags | only_dir, kReadModeMask | child, AT_FDCWD, path.c_str()) == 0) {
      // read mode in place
    } else if (errno == EOPNOTSUPP || errno == EINVAL) {
      fallback = std::string("no pre-content events here (") + errno_code(errno) + "): waiting at open instead";
      mode = "open";
    } else {
      throw errno_error(env, errno, "fanotify_mark(gate)", path);
    }
  }
  if (mode == "open") {
    if (fanotify_mark(gate_fd_, FAN_MARK_ADD | kind_flags | only_dir, kOpenModeMask | child, AT_FDCWD, path.c_str()) != 0)
      throw errno_error(env, errno, "fanotify_mark(gate)", path);
  }
  if (change_fd_ >= 0 && fanotify_mark(change_fd_, FAN_MARK_ADD | kind_flags | only_dir, change_mask | child, AT_FDCWD, path.c_str()) != 0) {
    int e = errno;
    fanotify_mark(gate_fd_, FAN_MARK_REMOVE | kind_flags | only_dir, kReadModeMask | kOpenModeMask | child, AT_FDCWD, path.c_str());
    throw errno_error(env, e, "fanotify_mark(change)", path);
  }
  RememberFilesystem(path);

  struct statfs sfs;
  struct stat st;
  Napi::Object out = Napi::Object::New(env);
  out.Set("mode", mode);
  if (!fallback.empty()) out.Set("fallback", fallback);
  if (stat(path.c_str(), &st) == 0) {
    out.Set("dev", (double)st.st_dev);
    // FAN_OPEN_PERM waits for JS on a filesystem with an open-mode guard; elsewhere the reader thread answers it.
    if (mode == "open") {
      std::lock_guard<std::mutex> lock(mu_);
      open_wait_devs_.insert((uint64_t)st.st_dev);
    }
  }
  if (statfs(path.c_str(), &sfs) == 0) out.Set("fsid", fsid_hex(&sfs.f_fsid));
  return out;
}

Napi::Value Gate::MarkMount(const Napi::CallbackInfo &info) { return Mark(info, FAN_MARK_MOUNT, true); }
Napi::Value Gate::UnmarkMount(const Napi::CallbackInfo &info) { return Mark(info, FAN_MARK_MOUNT, false); }

// fanotify_mark takes no O_PATH descriptor, but a path through /proc/self/fd resolves to the inode without opening
// it: that is how the reader thread drops an ignore or deny mark knowing only a handle.
bool Gate::RemoveMarkByHandle(uint64_t dev, int handle_type, const std::string &handle, bool deny) {
  if (handle.empty()) return false;
  auto it = mount_fd_by_dev_.find(dev);
  if (it == mount_fd_by_dev_.end()) return false;
  char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  auto *fh = reinterpret_cast<struct file_handle *>(storage);
  if (handle.size() > MAX_HANDLE_SZ) return false;
  fh->handle_bytes = handle.size();
  fh->handle_type = handle_type;
  memcpy(fh->f_handle, handle.data(), handle.size());
  int fd = open_by_handle_at(it->second, fh, O_PATH | O_CLOEXEC);
  if (fd < 0) return false;
  char path[40];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  bool removed = deny ? RemoveDenyOpenMark(AT_FDCWD, path) : RemoveIgnoreMark(AT_FDCWD, path);
  close(fd);
  return removed;
}

bool Gate::RemoveIgnoreMarkByHandle(uint64_t dev, int handle_type, const std::string &handle) {
  return RemoveMarkByHandle(dev, handle_type, handle, false);
}

// A denied inode on a read-mode filesystem asks for its own opens: the filesystem mark no longer does (one blocking
// event per cold access), and a server must still be refused at open (it can then answer an error before it sends
// headers). Not evictable: an evicted mark would let the next open through, and only the read would be refused.
// Open-mode filesystems ask for every open already. Called with mu_ held; true if the inode carries the mark now.
bool Gate::AddDenyOpenMarkLocked(int fd, const InodeKey &key) {
  if (open_wait_devs_.count(key.dev)) return false;
  if (fanotify_mark(gate_fd_, FAN_MARK_ADD, kDenyOpenMask | kKeepMask, fd, nullptr) != 0) {
    c_.deny_marks_refused++;  // the reads are still refused by the table; only the open passes
    return false;
  }
  c_.deny_marks_added++;
  return true;
}

// The verdict went (forget, dirty, bless): the inode stops asking at open. The mark itself stays (kKeepMask), not
// evictable now: a later ignore mark on it is added as it is (AddIgnoreBits).
bool Gate::RemoveDenyOpenMark(int dfd, const char *path) {
  if (fanotify_mark(gate_fd_, FAN_MARK_REMOVE, kDenyOpenMask, dfd, path) != 0) return false;
  c_.deny_marks_removed++;
  return true;
}

// Called with mu_ held, when entry `e` of `key` leaves the table or stops being a deny. `fd` (or -1) names the inode.
void Gate::DropDenyOpenMarkLocked(VerdictEntry &e, const InodeKey &key, int fd) {
  if (!e.open_marked) return;
  e.open_marked = false;
  if (fd >= 0) RemoveDenyOpenMark(fd, nullptr);
  else RemoveMarkByHandle(key.dev, e.handle_type, e.handle, true);
}

// One fanotify_mark(ADD) on the inode, evictable unless the inode's mark is not (a former deny mark refuses to be
// downgraded: EEXIST). Filesystems without pre-content events refuse FAN_PRE_ACCESS even in an ignore mask: they
// get the other bits.
static int add_inode_mark(int gate_fd, unsigned int flags, uint64_t mask, int fd) {
  for (unsigned int evictable : {(unsigned int)FAN_MARK_EVICTABLE, 0u}) {
    if (fanotify_mark(gate_fd, FAN_MARK_ADD | flags | evictable, mask, fd, nullptr) == 0) return 0;
    if ((errno == EOPNOTSUPP || errno == EINVAL) && (mask & FAN_PRE_ACCESS) &&
        fanotify_mark(gate_fd, FAN_MARK_ADD | flags | evictable, mask & ~FAN_PRE_ACCESS, fd, nullptr) == 0)
      return 0;
    if (errno != EEXIST) return -1;
  }
  return -1;
}

// Ignore bits on the inode's mark, which first gets (or keeps) kKeepMask in its own mask: from then on no removal of
// ignore or deny bits destroys it (compat.h says why that matters). The kernel still clears the ignore bits at the
// next write: the mark stays, silent no more.
bool Gate::AddIgnoreBits(int fd, uint64_t ignore) {
  if (add_inode_mark(gate_fd_, 0, kKeepMask, fd) == 0 && add_inode_mark(gate_fd_, FAN_MARK_IGNORE, ignore, fd) == 0) {
    c_.marks_added++;
    return true;
  }
  c_.marks_refused++;
  return false;
}

// The verdict cache's ignore mark.
bool Gate::AddIgnoreMark(int fd) { return AddIgnoreBits(fd, kIgnoreMask); }

bool Gate::RemoveIgnoreMark(int dfd, const char *path) {
  if (fanotify_mark(gate_fd_, FAN_MARK_REMOVE | FAN_MARK_IGNORE, kIgnoreMask, dfd, path) == 0 ||
      ((errno == EOPNOTSUPP || errno == EINVAL) &&
       fanotify_mark(gate_fd_, FAN_MARK_REMOVE | FAN_MARK_IGNORE, kIgnoreMask & ~FAN_PRE_ACCESS, dfd, path) == 0)) {
    c_.marks_removed++;
    return true;
  }
  return false;
}

// Forget, never assume: drop every cached verdict, and every ignore and deny bit in the kernel. Called with mu_ held.
// The table goes here; the kernel's bits on the unmark thread (RunUnmark), about 13 µs a mark: no thread of the hot
// path waits for them. Until it is done a file blessed before the forget may still be silent, as it was before.
void Gate::ForgetAllLocked(bool walk_after) {
  table_.clear();
  BumpAllSeqLocked();  // lane.cc: no judgement under way is concluded by a worker after this
  budgets_.clear();
  outside_.clear();
  sweep_at_ = max_allowed_;
  {
    std::lock_guard<std::mutex> lock(unmark_mu_);  // a leaf: taken under mu_, never the other way round
    c_.forgets_asked++;
    walk_after_unmark_ = walk_after_unmark_ || walk_after;
  }
  unmark_cv_.notify_one();
}

// No mark is destroyed (docs/kernel.md, "Forgetting every mark"): FAN_MARK_FLUSH destroyed every inode mark of the
// group at once, and a read whose fsnotify walk held its inode's mark in that instant passed without an event. The
// marks are read from the group's fdinfo — every one, by file handle: the table does not know them all (a sweep drops
// entries whose mark stays) — and each loses its ignore bits and its deny bit, keeping kKeepMask. Only where that
// cannot be done (no fdinfo, a mark whose inode cannot be named, more marks than kMaxFdinfoBytes lists) the flush
// after all, counted in ignoreMarkFlushes. Forgets asked while one runs are served by the next run, which reads
// fdinfo afresh: every mark then in place is cleared. forgetsDone counts the forgets whose marks were cleared.
void Gate::RunUnmark() {
  pthread_setname_np(pthread_self(), "blessd-unmark");
  uint64_t done = 0;
  for (;;) {
    uint64_t asked;
    bool walk;
    {
      std::unique_lock<std::mutex> lock(unmark_mu_);
      unmark_cv_.wait(lock, [&] { return unmark_stop_ || c_.forgets_asked.load() != done; });
      if (unmark_stop_) return;
      asked = c_.forgets_asked.load();
      walk = walk_after_unmark_;
      walk_after_unmark_ = false;
    }
    std::unordered_map<uint64_t, int> mounts;
    {
      std::lock_guard<std::mutex> lock(mu_);
      mounts = mount_fd_by_dev_;
    }
    if (!UnmarkAllInPlace(mounts) && !unmark_stopping_.load(std::memory_order_relaxed) &&
        fanotify_mark(gate_fd_, FAN_MARK_FLUSH, 0, AT_FDCWD, nullptr) == 0)
      c_.mark_flushes++;
    done = asked;
    // The walk only after this run: one started earlier put ignore marks that this run then stripped (their table
    // entries stayed, so the files were answered on this thread, but each first access raised an event again).
    // Asked before forgetsDone moves, so that whoever awaits the forget sees the walk under way, not the last one done.
    if (walk) RequestSettleWalk();
    c_.forgets_done.store(asked, std::memory_order_release);
  }
}

// Shutdown, before the gate group closes: a run under way stops at its next mark (closing the group removes them all).
void Gate::StopUnmark() {
  unmark_stopping_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(unmark_mu_);
    unmark_stop_ = true;
  }
  unmark_cv_.notify_one();
  if (unmark_thread_.joinable()) unmark_thread_.join();
}

namespace {
// fdinfo of a fanotify group: one line per inode mark, with the inode's file handle (fs/notify/fdinfo.c).
constexpr size_t kMaxFdinfoBytes = 64u << 20;  // about 400,000 marks
bool unhex(const char *s, size_t n, std::string &out) {
  if (n % 2) return false;
  out.resize(n / 2);
  for (size_t i = 0; i < n; i += 2) {
    auto v = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
    int hi = v(s[i]), lo = v(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i / 2] = (char)(hi << 4 | lo);
  }
  return true;
}
}  // namespace

// Every inode mark of the gate group, told to forget in place. False if any could not be (then the caller flushes).
// Without mu_: it touches no table, only marks (and the counters); `mounts` is a copy of mount_fd_by_dev_.
bool Gate::UnmarkAllInPlace(const std::unordered_map<uint64_t, int> &mounts) {
  char info_path[48];
  snprintf(info_path, sizeof info_path, "/proc/self/fdinfo/%d", gate_fd_);
  int info = open(info_path, O_RDONLY | O_CLOEXEC);
  if (info < 0) return false;
  std::string text;
  char buf[65536];
  ssize_t n;
  while ((n = read(info, buf, sizeof buf)) > 0 && text.size() <= kMaxFdinfoBytes) text.append(buf, (size_t)n);
  close(info);
  if (n < 0 || text.size() > kMaxFdinfoBytes) return false;
  bool all = true;
  std::string handle;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    unsigned long ino;
    unsigned int sdev, mflags, mask, ignored, bytes;
    int type, hex_at = 0;
    if (sscanf(line.c_str(), "fanotify ino:%lx sdev:%x mflags:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x f_handle:%n",
               &ino, &sdev, &mflags, &mask, &ignored, &bytes, &type, &hex_at) != 7 || hex_at == 0) {
      if (line.rfind("fanotify ino:", 0) == 0) all = false;  // an inode mark we cannot name
      continue;
    }
    const bool deny = mask & kDenyOpenMask;
    if (ignored == 0 && !deny) continue;  // asks what the filesystem mark asks: nothing to forget
    // fdinfo's sdev is the kernel's dev_t; the table's is stat's.
    const uint64_t dev = makedev(sdev >> 20, sdev & 0xfffff);
    auto m = mounts.find(dev);
    if (unmark_stopping_.load(std::memory_order_relaxed)) return false;
    if (!unhex(line.c_str() + hex_at, line.size() - hex_at, handle) || handle.size() != bytes || handle.size() > MAX_HANDLE_SZ ||
        m == mounts.end()) {
      all = false;
      continue;
    }
    char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    auto *fh = reinterpret_cast<struct file_handle *>(storage);
    fh->handle_bytes = handle.size();
    fh->handle_type = type;
    memcpy(fh->f_handle, handle.data(), handle.size());
    int fd = open_by_handle_at(m->second, fh, O_PATH | O_CLOEXEC);
    if (fd < 0) {
      // Even ESTALE: overlayfs without nfs_export prints handles (FIDs) that name a live inode and never open.
      all = false;
      continue;
    }
    char path[40];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    // A mark without kKeepMask (none of ours lacks it) gets it first: removing its last bits would destroy it.
    bool ok = (mask & kKeepMask) || fanotify_mark(gate_fd_, FAN_MARK_ADD | FAN_MARK_EVICTABLE, kKeepMask, AT_FDCWD, path) == 0 ||
              fanotify_mark(gate_fd_, FAN_MARK_ADD, kKeepMask, AT_FDCWD, path) == 0;
    // ENOENT: the mark went meanwhile (its inode evicted before we named it again): nothing left to forget.
    if (ok && ignored != 0) ok = RemoveIgnoreMark(AT_FDCWD, path) || errno == ENOENT;
    if (ok && deny) ok = RemoveDenyOpenMark(AT_FDCWD, path) || errno == ENOENT;
    close(fd);
    if (ok) c_.marks_forgotten++;
    else all = false;
  }
  return all;
}

}  // namespace blessd
