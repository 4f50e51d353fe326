// The reader thread: the hot path. Reads both groups, answers what it can alone, batches the rest for JS and
// enforces every forwarded event's deadline. Nothing here allocates per fast-path event; nothing here opens a file
// on a guarded filesystem (our own open would wait for this very thread).
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cstring>
#include "fanotify/compat.h"
#include "fanotify/gate.h"
#include "proc/fdinfo.h"

namespace blessd {

namespace {
constexpr size_t kBufSize = 64 * 1024;

std::string writer_key(int32_t pid, const InodeKey &k) {
  return std::to_string(pid) + ":" + std::to_string(k.dev) + ":" + std::to_string(k.ino);
}
}  // namespace

void Gate::Run() {
  struct pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {gate_fd_, POLLIN, 0}, {change_fd_, POLLIN, 0}};
  nfds_t nfds = change_fd_ >= 0 ? 3 : 2;
  while (!stopping_) {
    int r = poll(fds, nfds, PollTimeoutMs());
    if (r < 0 && errno != EINTR) break;
    if (stopping_) break;
    if (fds[0].revents & POLLIN) {
      uint64_t v;
      if (read(wake_fd_, &v, sizeof v) < 0) { /* nothing to drain */ }
    }
    auto *batch = new std::vector<OutEvent>();
    if (fds[1].revents & POLLIN) ReadGateGroup(*batch);
    if (nfds == 3 && (fds[2].revents & POLLIN)) ReadChangeGroup(*batch);
    ExpireDeadlines();
    if (batch->empty()) delete batch;
    else Deliver(batch);
  }
}

int Gate::PollTimeoutMs() {
  std::lock_guard<std::mutex> lock(mu_);
  if (deadlines_.empty()) return -1;
  int64_t ms = (deadlines_.front().first - now_ns()) / 1000000 + 1;
  return ms < 0 ? 0 : (int)std::min<int64_t>(ms, 60000);
}

void Gate::ExpireDeadlines() {
  int64_t now = now_ns();
  std::lock_guard<std::mutex> lock(mu_);
  while (!deadlines_.empty() && deadlines_.front().first <= now) {
    uint64_t id = deadlines_.front().second;
    deadlines_.pop_front();
    auto it = pending_.find(id);
    if (it != pending_.end() && AnswerLocked(id, it->second, deadline_answer_)) c_.by_deadline++;
  }
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

bool Gate::IsExempt(int32_t pid) {
  // called with mu_ held
  if (exempt_pids_.count(pid)) return true;
  if (!exempt_uids_.empty()) {
    long uid = process_uid(pid);
    if (uid >= 0 && exempt_uids_.count(uid)) return true;
  }
  return false;
}

// A kernel queue overflowed: events were lost, so nothing cached can be trusted. Forget, never assume.
void Gate::HandleOverflow(std::vector<OutEvent> &batch) {
  c_.overflows++;
  std::lock_guard<std::mutex> lock(mu_);
  ForgetAllLocked();
  batch.push_back(OutEvent{EventKind::Overflow});
}

void Gate::HandleGateEvent(const struct fanotify_event_metadata *md, std::vector<OutEvent> &batch) {
  if (md->vers != FANOTIFY_METADATA_VERSION) return;
  if (md->mask & FAN_Q_OVERFLOW) return HandleOverflow(batch);
  const int fd = md->fd;
  if (fd < 0) return;  // FAN_NOFD: nothing to answer with
  const bool perm = md->mask & kPermMask;
  if (md->mask & FAN_OPEN_EXEC_PERM) c_.exec_perm++;
  else if (md->mask & FAN_OPEN_PERM) c_.open_perm++;
  else if (md->mask & FAN_PRE_ACCESS) c_.pre_access++;
  else c_.open_notice++;

  // Fast path 1: our own process (reads through event fds generate nothing, but our other opens do).
  if (md->pid == own_pid_) {
    if (perm) WriteResponse(fd, FAN_ALLOW);
    close(fd);
    c_.fast_own++;
    return;
  }

  InodeKey key;
  struct stat st;
  bool have_key = fstat(fd, &st) == 0;
  if (have_key) key = InodeKey{(uint64_t)st.st_dev, (uint64_t)st.st_ino};

  uint32_t response = 0;
  enum { Miss, Answer, Writer } fast = Miss;
  bool retry_mark = false;
  bool dirty = false;  // changed since its last verdict: its tags are being cleared, only JS may judge it
  bool outside = false;  // outside every tree guard: remember it (trees.cc)
  if (have_key && TreeCheckpoint(fd, key, md->mask, outside)) {
    WriteResponse(fd, FAN_ALLOW);
    if (outside) RememberOutside(fd, key);
    close(fd);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (IsExempt(md->pid)) {
      fast = Answer;
      response = FAN_ALLOW;
      c_.fast_exempt++;
    } else if (have_key) {
      auto it = table_.find(key);
      dirty = it != table_.end() && it->second.verdict == Verdict::Dirty;
      if (it != table_.end() && it->second.verdict != Verdict::Dirty) {
        uint32_t gen = 0;
        bool gen_ok = !it->second.gen_known || (generation_of_fd(fd, gen) && gen == it->second.gen);
        if (!gen_ok) {
          table_.erase(it);  // a recycled inode number: the verdict was someone else's
        } else if (it->second.verdict == Verdict::Allowed) {
          fast = Answer;
          response = FAN_ALLOW;
          c_.fast_allowed++;
          // An event for a blessed inode means its ignore mark is missing: the kernel refused it while the file was
          // open for write, or evicted it. Re-add it, at most every 100 ms per inode.
          int64_t now = now_ns();
          if (now - it->second.mark_retry_ns > 100000000LL) {
            it->second.mark_retry_ns = now;
            retry_mark = true;
          }
        } else {
          fast = Answer;
          response = it->second.response;
          c_.fast_denied++;
        }
      }
      if (fast == Miss && KnownOutsideLocked(key, md->mask, outside)) {
        fast = Answer;  // outside every tree (trees.cc)
        response = FAN_ALLOW;
      }
      if (fast == Miss && (md->mask & FAN_PRE_ACCESS) && writers_.count(writer_key(md->pid, key))) fast = Writer;
    }
  }
  // A tree guard's filesystem mark asks about every inode; those outside every tree pass here (trees.cc).
  if (fast == Miss && have_key && TreeMiss(fd, key, md->mask, outside)) {
    fast = Answer;
    response = FAN_ALLOW;
  }
  if (fast == Miss && have_key && (md->mask & FAN_PRE_ACCESS) && process_writes_inode(md->pid, key.dev, key.ino)) {
    // Pre-content events fire on write() too. A process that holds the file open for writing is its author.
    std::lock_guard<std::mutex> lock(mu_);
    if (writers_.size() > 4096) writers_.clear();
    writers_.insert(writer_key(md->pid, key));
    fast = Writer;
  }
  if (fast == Writer) {
    c_.fast_writer++;
    fast = Answer;
    response = FAN_ALLOW;
  }
  if (fast == Answer) {
    if (perm) WriteResponse(fd, response);
    if (retry_mark) AddIgnoreMark(fd);
    if (outside) RememberOutside(fd, key);
    close(fd);
    return;
  }

  // Miss. A file whose valid tags settle the verdict is answered here (restart, reload, evicted mark); else JS decides.
  if (have_key && !dirty && SettleByTags(md, fd, key, perm, batch)) return;
  OutEvent ev{perm ? EventKind::Perm : EventKind::Open};
  ev.fd = fd;
  ev.mask = md->mask;
  ev.pid = md->pid;
  ev.dev = key.dev;
  ev.ino = key.ino;
  uint32_t gen = 0;
  if (have_key && generation_of_fd(fd, gen)) ev.gen = gen;
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

  std::lock_guard<std::mutex> lock(mu_);
  if (pending_.size() + held_notices_ >= max_pending_) {
    // Too many fds held already (RLIMIT_NOFILE is a hard wall: past it the kernel denies everything).
    if (perm) {
      WriteResponse(fd, deadline_answer_);
      c_.overload++;
    } else {
      c_.notices_dropped++;  // the scan will start at the first read instead
    }
    close(fd);
    return;
  }
  if (perm) {
    ev.id = next_id_++;
    int64_t now = now_ns();
    pending_.emplace(ev.id, Pending{fd, now});
    deadlines_.emplace_back(now + deadline_ns_, ev.id);
    c_.forwarded++;
  } else {
    held_notices_++;
  }
  batch.push_back(std::move(ev));
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
      auto it = table_.find(key);
      const bool is_dir = md->mask & FAN_ONDIR;
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
        // A bless that raced this write may have added its ignore mark after the write: drop it.
        if (it != table_.end() && it->second.verdict == Verdict::Allowed) RemoveIgnoreMarkByHandle(ev.dev, ev.handle_type, ev.handle);
        if (it == table_.end()) it = table_.emplace(key, VerdictEntry{}).first;
        it->second.verdict = Verdict::Dirty;
      } else if (!is_dir && (md->mask & (FAN_MODIFY | FAN_CLOSE_WRITE))) {
        // Stores through a shared mapping clear nothing in the kernel and raise no modify: an entry that is not
        // dirty at close-after-write may still carry its ignore mark. Drop it ourselves.
        bool was_dirty = it != table_.end() && it->second.verdict == Verdict::Dirty;
        if (!was_dirty) RemoveIgnoreMarkByHandle(ev.dev, ev.handle_type, ev.handle);
        if (it != table_.end()) table_.erase(it);
        std::string prefix = ":" + std::to_string(key.dev) + ":" + std::to_string(key.ino);
        for (auto w = writers_.begin(); w != writers_.end();) {
          if (w->size() > prefix.size() && w->compare(w->size() - prefix.size(), prefix.size(), prefix) == 0) w = writers_.erase(w);
          else ++w;
        }
      } else if (md->mask & FAN_DELETE_SELF) {
        if (it != table_.end()) table_.erase(it);
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
