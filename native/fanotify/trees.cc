// Overview — tree guards on a filesystem mark.
//
// A tree guard (and a mount guard whose mount shows only part of its filesystem) marks the whole filesystem, in
// both groups, so no directory is ever unmarked: whatever is created, renamed in, bind-mounted or reached from
// another mount namespace raises events. The tree only decides which inodes need judging, and it decides by inode
// and directory entry, never by the path an accessor used:
//  - an inode is judged unless it is a regular file with one link, no verdict tag, whose one name (its dentry, as
//    seen from the tree root's mount in our namespace) is not below any tree root of that filesystem;
//  - an inode found outside is allowed with an evictable ignore mark and remembered in `outside_`; a link, move or
//    attribute change of it (FAN_CREATE/MOVED_TO/RENAME/ATTRIB on the change group), or a directory moved into a
//    tree, drops that memory and the ignore mark, so its next access is judged again;
//  - content changes of outside inodes are nobody's business: they are dropped here, not sent to JS.
// What this file must not do: open a file for real (the reader thread calls it: an open would wait for itself),
// or take mu_ while holding trees_mu_ (the change path holds mu_ and then takes trees_mu_).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <cstdio>
#include <unistd.h>
#include <cstring>
#include "common/errors.h"
#include "fanotify/compat.h"
#include "fanotify/gate.h"

namespace blessd {

namespace {
struct HandleBuf {
  char storage[sizeof(struct file_handle) + MAX_HANDLE_SZ];
  struct file_handle *fh() { return reinterpret_cast<struct file_handle *>(storage); }
};

bool handle_of_fd(int fd, HandleBuf &b) {
  b.fh()->handle_bytes = MAX_HANDLE_SZ;
  int mount_id;
  return name_to_handle_at(fd, "", b.fh(), &mount_id, AT_EMPTY_PATH) == 0;
}

bool handle_from_bytes(int type, const std::string &bytes, HandleBuf &b) {
  if (bytes.empty() || bytes.size() > MAX_HANDLE_SZ) return false;
  b.fh()->handle_bytes = bytes.size();
  b.fh()->handle_type = type;
  memcpy(b.fh()->f_handle, bytes.data(), bytes.size());
  return true;
}

// The path of an fd in our namespace, by its dentry and the mount it was opened through. "" when unknown.
std::string fd_path(int fd) {
  char link[40], target[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  return n > 0 ? std::string(target, n) : std::string();
}

bool below(const std::string &path, const std::string &root) {
  if (root == "/") return true;
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/';
}

// Any `<namespace>.scanned-by.<scanner>` name: content someone judged is judged again wherever it sits.
bool names_carry_tags(const char *names, ssize_t n) {
  for (ssize_t i = 0; i < n;) {
    const char *name = names + i;
    if (strstr(name, ".scanned-by.")) return true;
    i += strlen(name) + 1;
  }
  return false;
}

bool carries_tags(int path_fd) {
  char link[40], names[2048];
  snprintf(link, sizeof link, "/proc/self/fd/%d", path_fd);
  ssize_t n = listxattr(link, names, sizeof names);
  if (n < 0) return errno != ENOTSUP && errno != EOPNOTSUPP;  // ERANGE (many names) or unknown: judge
  return names_carry_tags(names, n);
}

constexpr unsigned int kStatxMntId = 0x00001000U;  // STATX_MNT_ID (5.8); older headers lack it
}  // namespace

// Is `path` (the one name of inode `ino`, walked up from its dentry) outside `root`? Only a path that really names
// this inode now counts: a disconnected dentry, a mount over a parent or a rename in between make it "inside".
static bool outside_root(const std::string &path, const std::string &prefix, uint64_t ino, uint64_t dev) {
  if (path.empty() || path[0] != '/' || path == prefix || below(path, prefix)) return false;
  struct stat named;
  return lstat(path.c_str(), &named) == 0 && (uint64_t)named.st_dev == dev && (uint64_t)named.st_ino == ino;
}

// Where does the inode behind `fh` sit? Takes trees_mu_ only.
Gate::Place Gate::Locate(uint64_t dev, const struct file_handle *fh, bool directory) {
  std::lock_guard<std::mutex> lock(trees_mu_);
  auto g = guarded_.find(dev);
  if (g == guarded_.end() || g->second.whole || g->second.roots.empty()) return Place::NoTree;
  int64_t t0 = now_ns();
  Place place = Place::Outside;
  for (size_t i = 0; i < g->second.roots.size() && place == Place::Outside; i++) {
    const TreeRoot &root = g->second.roots[i];
    int pfd = open_by_handle_at(root.fd, const_cast<struct file_handle *>(fh), O_PATH | O_CLOEXEC);
    if (pfd < 0) {
      place = Place::Inside;  // unknown: judge
      break;
    }
    struct stat st;
    if (fstat(pfd, &st) != 0 || (!directory && (!S_ISREG(st.st_mode) || st.st_nlink != 1 || (i == 0 && carries_tags(pfd))))) {
      place = Place::Inside;
    } else {
      // The dentry's one path, walked up from the dentry itself: an accessor's bind mount or namespace plays no part.
      std::string path = fd_path(pfd);
      if (directory ? (path.empty() || path[0] != '/' || path == root.prefix || below(path, root.prefix)) : !outside_root(path, root.prefix, st.st_ino, st.st_dev))
        place = Place::Inside;
    }
    close(pfd);
  }
  c_.tree_checks++;
  c_.tree_check_ns += now_ns() - t0;
  if (place == Place::Outside) c_.tree_outside++;
  return place;
}

// The gate path's check, on the event fd. The event fd was opened through the accessor's mount; when that is the
// tree root's own mount (the common case: a process of our namespace on the usual path), its path walks up from
// the same dentry and the handle round trip (name_to_handle_at + open_by_handle_at, the dearest step) is skipped.
Gate::Place Gate::LocateFd(int fd, uint64_t dev) {
  std::lock_guard<std::mutex> lock(trees_mu_);
  auto g = guarded_.find(dev);
  if (g == guarded_.end() || g->second.whole || g->second.roots.empty()) return Place::NoTree;
  int64_t t0 = now_ns();
  Place place = Place::Outside;
  struct statx sx;
  char names[2048];
  ssize_t n;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_NLINK | STATX_INO | kStatxMntId, &sx) != 0 ||
      !S_ISREG(sx.stx_mode) || sx.stx_nlink != 1 || !(sx.stx_mask & kStatxMntId)) {
    place = Place::Inside;
  } else if ((n = flistxattr(fd, names, sizeof names)) < 0 ? (errno != ENOTSUP && errno != EOPNOTSUPP) : names_carry_tags(names, n)) {
    place = Place::Inside;
  }
  HandleBuf b;
  bool have_handle = false;
  for (size_t i = 0; i < g->second.roots.size() && place == Place::Outside; i++) {
    const TreeRoot &root = g->second.roots[i];
    std::string path;
    if (root.mnt_id == sx.stx_mnt_id) {
      path = fd_path(fd);
    } else {
      if (!have_handle && !(have_handle = handle_of_fd(fd, b))) {
        place = Place::Inside;
        break;
      }
      int pfd = open_by_handle_at(root.fd, b.fh(), O_PATH | O_CLOEXEC);
      if (pfd >= 0) {
        path = fd_path(pfd);
        close(pfd);
      }
    }
    if (!outside_root(path, root.prefix, sx.stx_ino, dev)) place = Place::Inside;
  }
  c_.tree_checks++;
  c_.tree_check_ns += now_ns() - t0;
  if (place == Place::Outside) c_.tree_outside++;
  return place;
}

// The gate path's miss, on a filesystem with tree guards. Returns true when the event is answered here (allow);
// `remember_outside` then asks the caller to remember the inode as outside (after answering).
//
// Every open of a file on such a filesystem raises FAN_OPEN_PERM, which an outside inode's ignore mark does not
// silence: it is the checkpoint where a link or move into a tree is noticed before any read. Without it, an ignore
// mark set while the file was outside would let the first reads through the tree pass until the reader thread got
// to the FAN_CREATE/FAN_RENAME record (a race an attacker wins at will: link, then read at once). In read mode the
// open itself then passes here; the read waits as usual.
bool Gate::TreeMiss(int fd, const InodeKey &key, uint64_t mask, bool &remember_outside) {
  Place place = LocateFd(fd, key.dev);
  if (place == Place::NoTree) return false;
  if (place == Place::Outside) {
    remember_outside = true;
    return true;
  }
  if (mask & FAN_OPEN_PERM) {
    // Inside (or a whole-filesystem guard too): a former outside inode loses its ignore mark before it is read.
    std::lock_guard<std::mutex> lock(mu_);
    auto o = outside_.find(key);
    if (o != outside_.end()) {
      RemoveIgnoreMark(fd, nullptr);
      outside_.erase(o);
      c_.tree_relinked++;
    }
  }
  return false;
}

// FAN_OPEN_PERM on a read-mode filesystem with tree guards exists as the checkpoint: it never waits for a verdict
// (the read does). Only a deny the table holds is judged on by the caller, as on any read-mode guard.
// Returns true when the event is such a checkpoint; it is then answered allow by the caller.
bool Gate::TreeCheckpoint(int fd, const InodeKey &key, uint64_t mask, bool &remember_outside) {
  if (!(mask & FAN_OPEN_PERM) || (mask & FAN_OPEN_EXEC_PERM)) return false;
  {
    std::lock_guard<std::mutex> lock(trees_mu_);
    auto g = guarded_.find(key.dev);
    if (g == guarded_.end() || !g->second.open_checkpoint) return false;
  }
  TreeMiss(fd, key, mask, remember_outside);
  c_.tree_checkpoints++;
  {
    // A known deny is refused at open here too, as on a filesystem guard (its deny mark asks for this very open):
    // the caller judges it on (a writer's open still passes, HandleGateEvent step 5).
    std::lock_guard<std::mutex> lock(mu_);
    auto it = table_.find(key);
    if (it != table_.end() && it->second.verdict == Verdict::Denied) return false;
  }
  return true;
}

// The gate path found an outside inode: remember it and let the kernel stay silent about it, except at open.
void Gate::RememberOutside(int fd, const InodeKey &key) {
  OutsideEntry e;
  HandleBuf b;
  if (handle_of_fd(fd, b)) {
    e.handle_type = b.fh()->handle_type;
    e.handle.assign(reinterpret_cast<char *>(b.fh()->f_handle), b.fh()->handle_bytes);
  }
  e.mark_retry_ns = now_ns();
  AddIgnoreBits(fd, kOutsideIgnoreMask);
  std::lock_guard<std::mutex> lock(mu_);
  if (outside_.size() >= max_entries_) ForgetOutsideLocked();
  outside_[key] = std::move(e);
}

// Called with mu_ held, from the gate path: a remembered outside inode is allowed at once. Its ignore mark is
// missing (refused while someone had the file open for write, or evicted): re-add it at most every 100 ms.
bool Gate::KnownOutsideLocked(const InodeKey &key, uint64_t mask, bool &retry_mark) {
  if (mask & FAN_OPEN_PERM) return false;  // the checkpoint: looked at afresh every time
  auto o = outside_.find(key);
  if (o == outside_.end()) return false;
  int64_t now = now_ns();
  if (now - o->second.mark_retry_ns > 100000000LL) {
    o->second.mark_retry_ns = now;
    retry_mark = true;
  }
  c_.fast_outside++;
  return true;
}

void Gate::ForgetOutsideLocked() {
  for (auto &kv : outside_) RemoveIgnoreMarkByHandle(kv.first.dev, kv.second.handle_type, kv.second.handle);
  outside_.clear();
}

// Called with mu_ held for each resolved change record. Returns true when the record is none of our business
// (a content change of an inode outside every tree) and must not reach JS.
bool Gate::TreeChangeLocked(uint64_t mask, const OutEvent &ev, const InodeKey &key, bool in_table) {
  constexpr uint64_t kRelink = FAN_CREATE | FAN_MOVED_TO | FAN_RENAME | FAN_ATTRIB | FAN_DELETE_SELF;
  if (mask & FAN_ONDIR) {
    // A directory moved somewhere: if into a tree (or we cannot tell), the outside inodes below it are inside now.
    if (!(mask & (FAN_MOVED_TO | FAN_RENAME)) || outside_.empty()) return false;
    HandleBuf b;
    if (!handle_from_bytes(ev.handle_type, ev.handle, b) || Locate(key.dev, b.fh(), true) != Place::Outside) {
      c_.tree_forget_moves++;
      ForgetOutsideLocked();
    }
    return false;
  }
  auto o = outside_.find(key);
  if (o != outside_.end()) {
    if (!(mask & kRelink)) return true;
    // Linked or moved (maybe into a tree), or its attributes changed: judge its next access afresh.
    RemoveIgnoreMarkByHandle(key.dev, o->second.handle_type, o->second.handle);
    outside_.erase(o);
    return false;
  }
  if (in_table || (mask & kRelink) || !(mask & (FAN_MODIFY | FAN_CLOSE_WRITE))) return false;
  HandleBuf b;
  if (!handle_from_bytes(ev.handle_type, ev.handle, b) || Locate(key.dev, b.fh(), false) != Place::Outside) return false;
  if (outside_.size() >= max_entries_) ForgetOutsideLocked();
  outside_[key] = OutsideEntry{ev.handle_type, ev.handle, 0};
  c_.tree_changes_dropped++;
  return true;
}

// markFilesystem(path, mode) / markTree(path, mode): both put a filesystem mark on the filesystem of `path`; a
// tree also names the directory whose content is judged. Guards on one filesystem share one mark, so they must
// wait at the same place.
Napi::Value Gate::Guard(const Napi::CallbackInfo &info, bool tree) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "gate: guard path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string asked = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "read";
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw errno_error(env, errno, "stat", path);
  {
    std::lock_guard<std::mutex> lock(trees_mu_);
    auto g = guarded_.find(st.st_dev);
    if (g != guarded_.end() && asked != g->second.mode && !(asked == "read" && g->second.fell_back))
      throw Napi::Error::New(env, "gate: " + path + " asks to wait at " + asked + ", but an earlier guard on the same filesystem waits at " +
                                      g->second.mode + " (guards on one filesystem share one filesystem mark)");
  }
  int root_fd = -1;
  std::string prefix;
  if (tree) {
    root_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) throw errno_error(env, errno, "open(tree root)", path);
    prefix = fd_path(root_fd);
    if (prefix.empty() || prefix[0] != '/') {
      close(root_fd);
      throw Napi::Error::New(env, "gate: cannot name the tree root " + path + " in this mount namespace");
    }
    HandleBuf probe;
    if (!handle_of_fd(root_fd, probe)) {
      int e = errno;
      close(root_fd);
      throw errno_error(env, e, "name_to_handle_at (a tree guard judges by file handle)", path);
    }
  }
  Napi::Value out;
  try {
    out = Mark(info, FAN_MARK_FILESYSTEM, true);
  } catch (...) {
    if (root_fd >= 0) close(root_fd);
    throw;
  }
  Napi::Object o = out.As<Napi::Object>();
  bool checkpoint = false;
  if (tree && o.Get("mode").As<Napi::String>().Utf8Value() == "read") {
    // The open-time checkpoint (see TreeMiss). Open mode has FAN_OPEN_PERM already.
    if (fanotify_mark(gate_fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN_PERM, AT_FDCWD, path.c_str()) != 0) {
      int e = errno;
      close(root_fd);
      throw errno_error(env, e, "fanotify_mark(open checkpoint)", path);
    }
    checkpoint = true;
  }
  if (tree && change_fd_ >= 0 && fanotify_mark(change_fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, kTreeChangeMask, AT_FDCWD, path.c_str()) != 0) {
    int e = errno;
    if (root_fd >= 0) close(root_fd);
    throw errno_error(env, e, "fanotify_mark(tree change)", path);
  }
  std::lock_guard<std::mutex> lock(trees_mu_);
  GuardedFs &g = guarded_[st.st_dev];
  g.mode = o.Get("mode").As<Napi::String>().Utf8Value();
  g.fell_back = o.Has("fallback");
  g.open_checkpoint = g.open_checkpoint || checkpoint;
  if (tree) {
    struct statx sx;
    uint64_t mnt_id = statx(root_fd, "", AT_EMPTY_PATH, kStatxMntId, &sx) == 0 && (sx.stx_mask & kStatxMntId) ? sx.stx_mnt_id : ~0ULL;
    g.roots.push_back(TreeRoot{prefix, root_fd, (uint64_t)st.st_ino, mnt_id});
  }
  else g.whole = true;
  return out;
}

Napi::Value Gate::Unguard(const Napi::CallbackInfo &info, bool tree) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "gate: guard path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  struct stat st;
  if (stat(path.c_str(), &st) != 0) throw errno_error(env, errno, "stat", path);
  bool last = false;
  {
    std::lock_guard<std::mutex> lock(trees_mu_);
    auto g = guarded_.find(st.st_dev);
    if (g == guarded_.end()) return env.Undefined();
    if (tree) {
      auto &roots = g->second.roots;
      for (auto r = roots.begin(); r != roots.end();) {
        if (r->ino == (uint64_t)st.st_ino) {
          close(r->fd);
          r = roots.erase(r);
        } else {
          ++r;
        }
      }
    } else {
      g->second.whole = false;
    }
    last = g->second.roots.empty() && !g->second.whole;
    if (last) guarded_.erase(g);
  }
  if (!last) return env.Undefined();
  {
    // The filesystem is no longer guarded: its denied inodes stop asking at open (marks.cc, deny marks).
    std::lock_guard<std::mutex> lock(mu_);
    for (auto &kv : table_)
      if (kv.first.dev == (uint64_t)st.st_dev) DropDenyOpenMarkLocked(kv.second, kv.first, -1);
  }
  return Mark(info, FAN_MARK_FILESYSTEM, false);
}

Napi::Value Gate::MarkFilesystem(const Napi::CallbackInfo &info) { return Guard(info, false); }
Napi::Value Gate::MarkTree(const Napi::CallbackInfo &info) { return Guard(info, true); }
Napi::Value Gate::UnmarkFilesystem(const Napi::CallbackInfo &info) { return Unguard(info, false); }
Napi::Value Gate::UnmarkTree(const Napi::CallbackInfo &info) { return Unguard(info, true); }

void Gate::CloseTrees() {
  std::lock_guard<std::mutex> lock(trees_mu_);
  for (auto &kv : guarded_)
    for (auto &r : kv.second.roots) close(r.fd);
  guarded_.clear();
}

}  // namespace blessd
