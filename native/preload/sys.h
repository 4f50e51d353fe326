// The library's own I/O goes straight to the kernel through syscall(2), never through the wrapped libc entry
// points: its reads of config, key and content must not gate themselves, and must not depend on which wrappers
// the dynamic linker resolved first.
#ifndef BLESSD_PRELOAD_SYS_H
#define BLESSD_PRELOAD_SYS_H
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static inline int sys_open(const char *path, int flags, int mode) { return (int)syscall(SYS_openat, AT_FDCWD, path, flags | O_CLOEXEC, mode); }
static inline ssize_t sys_read(int fd, void *buf, size_t n) { return syscall(SYS_read, fd, buf, n); }
static inline ssize_t sys_pread(int fd, void *buf, size_t n, off_t at) { return syscall(SYS_pread64, fd, buf, n, at); }
static inline ssize_t sys_write(int fd, const void *buf, size_t n) { return syscall(SYS_write, fd, buf, n); }
static inline int sys_close(int fd) { return (int)syscall(SYS_close, fd); }

/* Read a whole small file into buf (NUL-terminated). Returns its length, -1 with errno, or -2 if it is larger. */
static inline long sys_read_file(const char *path, char *buf, size_t cap) {
  int fd = sys_open(path, O_RDONLY, 0);
  if (fd < 0) return -1;
  size_t len = 0;
  for (;;) {
    ssize_t n = sys_read(fd, buf + len, cap - 1 - len);
    if (n < 0) {
      sys_close(fd);
      return -1;
    }
    if (n == 0) break;
    len += (size_t)n;
    if (len == cap - 1) {
      sys_close(fd);
      return -2;
    }
  }
  sys_close(fd);
  buf[len] = 0;
  return (long)len;
}

#endif
