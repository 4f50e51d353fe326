// Overview — /proc/<tid> for the reader thread: which syscall a blocked task is in, whether its fd argument writes
// the inode an event is about, and who the task is.
//
// Why /proc/<tid>/syscall: while we hold a permission event, the accessor sleeps inside the syscall that raised it,
// and the kernel shows that syscall's number and register arguments (docs/kernel.md, "The accessor's syscall").
// That is one small read, O(1) whatever the task holds — the fd-table scan it replaces cost O(fds) per event.
// Must not: open anything but /proc files (an open on a guarded filesystem would wait for the reader thread itself),
// allocate, or guess in the permissive direction — whatever cannot be read or parsed is a Read and waits.
#include "proc/task.h"
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace blessd {

namespace {

ssize_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return n;
}

enum class SyscallState : uint8_t { Known, Running, Unknown };

// "nr a0 a1 a2 a3 a4 a5 sp pc" (hex arguments); "running" or "-1 sp pc" when the task is not in a syscall.
// "running" also shows in the moment between the accessor queueing its event (which wakes us) and falling asleep
// to wait for the answer, longer when it is preempted there on a loaded machine: say Running, and the caller asks
// again a moment later (the reader thread sets the event aside instead of sleeping on it).
SyscallState read_syscall(pid_t tid, long &nr, unsigned long args[6]) {
  char path[48], buf[256];
  snprintf(path, sizeof path, "/proc/%d/syscall", (int)tid);
  if (read_small(path, buf, sizeof buf) <= 0) return SyscallState::Unknown;
  if (buf[0] == 'r') return SyscallState::Running;
  if (buf[0] < '0' || buf[0] > '9') return SyscallState::Unknown;  // -1: not blocked in a syscall
  char *p = buf;
  nr = strtol(p, &p, 10);
  for (int i = 0; i < 6; i++) {
    char *q;
    args[i] = strtoul(p, &q, 16);
    if (q == p) return SyscallState::Unknown;
    p = q;
  }
  return SyscallState::Known;
}

// fd `fd` of task `tid` is open on (dev, ino); with `for_write`, also with O_WRONLY or O_RDWR.
bool fd_on_inode(pid_t tid, unsigned long fd, uint64_t dev, uint64_t ino, bool for_write) {
  if (fd > 0x7fffffffUL) return false;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/fdinfo/%lu", (int)tid, fd);
  if (read_small(path, buf, sizeof buf) <= 0) return false;
  const char *f = strstr(buf, "flags:");
  const char *i = strstr(buf, "\nino:");
  if (!f || !i) return false;
  unsigned long flags = strtoul(f + 6, nullptr, 8);  // octal in fdinfo
  if (strtoull(i + 5, nullptr, 10) != ino) return false;
  if (for_write && (flags & O_ACCMODE) == O_RDONLY) return false;
  // Inode numbers repeat across filesystems: confirm the device through the fd link (a stat, not an open).
  snprintf(path, sizeof path, "/proc/%d/fd/%lu", (int)tid, fd);
  struct stat st;
  return stat(path, &st) == 0 && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
}

}  // namespace

TaskAccess task_access(pid_t tid, uint64_t dev, uint64_t ino) {
  long nr;
  unsigned long a[6];
  SyscallState state = read_syscall(tid, nr, a);
  if (state == SyscallState::Running) return TaskAccess::NotYet;
  if (state != SyscallState::Known) return TaskAccess::Read;
  switch (nr) {
    case SYS_write:
    case SYS_pwrite64:
    case SYS_writev:
    case SYS_pwritev:
    case SYS_pwritev2:
    case SYS_ftruncate:
    case SYS_fallocate:
      return fd_on_inode(tid, a[0], dev, ino, true) ? TaskAccess::Write : TaskAccess::Read;
    case SYS_copy_file_range:
      // Two events, one per side: the target's passes; the source's, or a copy within one file, waits.
      return fd_on_inode(tid, a[2], dev, ino, true) && !fd_on_inode(tid, a[0], dev, ino, false) ? TaskAccess::Write : TaskAccess::Read;
    case SYS_mmap: {
      // mmap(addr, len, prot, flags, fd, off): stores through a shared writable mapping raise no event, ever.
      const unsigned long type = a[3] & MAP_TYPE;
      const bool shared = type == MAP_SHARED || type == MAP_SHARED_VALIDATE;
      return (a[2] & PROT_WRITE) && shared && fd_on_inode(tid, a[4], dev, ino, true) ? TaskAccess::SharedWriteMap : TaskAccess::Read;
    }
    case SYS_truncate:
      // By path, so no fd to check; a truncate returns no content whatever file it names.
      return TaskAccess::Write;
    default:
      return TaskAccess::Read;
  }
}

int task_open_accmode(pid_t tid) {
  long nr;
  unsigned long a[6];
  SyscallState state = read_syscall(tid, nr, a);
  if (state == SyscallState::Running) return kAccmodeNotYet;
  if (state != SyscallState::Known) return -1;
  unsigned long flags;
  if (nr == SYS_openat) flags = a[2];
#ifdef SYS_open
  else if (nr == SYS_open) flags = a[1];
#endif
#ifdef SYS_creat
  else if (nr == SYS_creat) return O_WRONLY;
#endif
  else return -1;
  return (int)(flags & O_ACCMODE);
}

bool task_identity(pid_t tid, pid_t &tgid, uint32_t &uid, char *name, size_t name_size) {
  char path[48], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
  if (read_small(path, buf, sizeof buf) <= 0) return false;
  const char *t = strstr(buf, "\nTgid:");
  const char *u = strstr(buf, "\nUid:");
  if (!t || !u) return false;
  tgid = (pid_t)strtol(t + 6, nullptr, 10);
  uid = (uint32_t)strtoul(u + 5, nullptr, 10);  // the real uid: a setuid program still counts for who ran it
  if (name && name_size > 0) {
    // The first line, "Name:\t<comm>" (the kernel escapes odd bytes in it; a prefix check does not mind).
    name[0] = 0;
    if (strncmp(buf, "Name:", 5) == 0) {
      const char *n = buf + 5;
      while (*n == '\t' || *n == ' ') n++;
      size_t len = strcspn(n, "\n");
      if (len >= name_size) len = name_size - 1;
      memcpy(name, n, len);
      name[len] = 0;
    }
  }
  return true;
}

long task_uid(pid_t tid) {
  char path[32];
  snprintf(path, sizeof path, "/proc/%d", (int)tid);
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return (long)st.st_uid;
}

bool task_in_group(pid_t tgid, pid_t tid) { return syscall(SYS_tgkill, tgid, tid, 0) == 0; }

}  // namespace blessd
