// The libc entry points the library interposes (LD_PRELOAD), each forwarding to the next definition found with
// dlsym(RTLD_NEXT).
//
// Overview (what this file owns, what it must not do):
// - Opens (open*, creat*, dup*, fcntl F_DUPFD, close*) only keep the descriptor table honest: a reused number
//   forgets what the previous file was. They never refuse anything.
// - Content accesses (read*, pread*, readv*, preadv*, mmap*, sendfile*, copy_file_range, splice) ask the gate
//   about their source descriptor; the first one on an open file decides, later ones cost one atomic load.
// - stdio reads do not come back through read() (glibc calls its internal one), so fopen/freopen/fdopen ask the
//   gate when the stream is opened for reading.
// - exec* (execve, execv, execvp, execvpe, execveat, fexecve) and posix_spawn* ask the gate about the program file before the kernel loads it.
// - A refusal is -1 (MAP_FAILED, NULL) with errno EPERM (EAGAIN when the answer is not known yet); a pass leaves
//   errno untouched. Nothing here allocates, and nothing aborts: a failure inside the gate is an answer, not a crash.
// Static binaries and setuid programs never load this library (the dynamic linker ignores LD_PRELOAD for setuid),
// and system calls made without libc (io_uring, raw syscall(2)) are not seen: docs/preload.md says so.
// node-gyp builds with _FILE_OFFSET_BITS=64, which renames open to open64 in the headers: both must be defined here.
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>
#include "gate.h"

/* Only the interposed entry points are exported (the rest is built hidden): a host that defines its own
 * sha256_init or config_parse must not bind to ours, nor ours to its. */
#pragma GCC visibility push(default)

int gate_fast_pass(int fd);

static void prime(void);
__attribute__((constructor)) static void preload_init(void) {
  gate_init();
  prime();
}

#define NEXT(name, ret, args)                                            \
  static ret(*real_##name) args;                                         \
  if (!real_##name) real_##name = (ret(*) args)dlsym(RTLD_NEXT, #name); \
  if (!real_##name) {                                         \
    errno = ENOSYS;                                           \
    return FAILED;                                            \
  }

/* Gate fd before a content access; on refusal return FAILED with errno set. */
#define GATE(fd)                          \
  if (!gate_fast_pass(fd)) {              \
    int refused_ = gate_fd(fd);           \
    if (refused_) {                       \
      errno = refused_;                   \
      return FAILED;                      \
    }                                     \
  }

static int opened(int fd) {
  if (fd >= 0) gate_forget(fd);
  return fd;
}

static mode_t mode_arg(int flags, va_list ap) { return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(ap, mode_t) : 0; }

// ---- opens: keep the table honest ----------------------------------------------------------------------------
#define FAILED (-1)

int open(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  NEXT(open, int, (const char *, int, ...));
  return opened(real_open(path, flags, m));
}

int open64(const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  NEXT(open64, int, (const char *, int, ...));
  return opened(real_open64(path, flags, m));
}

int openat(int dir, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  NEXT(openat, int, (int, const char *, int, ...));
  return opened(real_openat(dir, path, flags, m));
}

int openat64(int dir, const char *path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t m = mode_arg(flags, ap);
  va_end(ap);
  NEXT(openat64, int, (int, const char *, int, ...));
  return opened(real_openat64(dir, path, flags, m));
}

/* _FORTIFY_SOURCE builds call these when the flags are not a compile-time constant. */
int __open_2(const char *path, int flags);
int __open_2(const char *path, int flags) {
  NEXT(__open_2, int, (const char *, int));
  return opened(real___open_2(path, flags));
}
int __open64_2(const char *path, int flags);
int __open64_2(const char *path, int flags) {
  NEXT(__open64_2, int, (const char *, int));
  return opened(real___open64_2(path, flags));
}
int __openat_2(int dir, const char *path, int flags);
int __openat_2(int dir, const char *path, int flags) {
  NEXT(__openat_2, int, (int, const char *, int));
  return opened(real___openat_2(dir, path, flags));
}
int __openat64_2(int dir, const char *path, int flags);
int __openat64_2(int dir, const char *path, int flags) {
  NEXT(__openat64_2, int, (int, const char *, int));
  return opened(real___openat64_2(dir, path, flags));
}

int creat(const char *path, mode_t m) {
  NEXT(creat, int, (const char *, mode_t));
  return opened(real_creat(path, m));
}
int creat64(const char *path, mode_t m) {
  NEXT(creat64, int, (const char *, mode_t));
  return opened(real_creat64(path, m));
}

int dup(int fd) {
  NEXT(dup, int, (int));
  return opened(real_dup(fd));
}
int dup2(int fd, int to) {
  NEXT(dup2, int, (int, int));
  return opened(real_dup2(fd, to));
}
int dup3(int fd, int to, int flags) {
  NEXT(dup3, int, (int, int, int));
  return opened(real_dup3(fd, to, flags));
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, va_list ap) {
  void *arg = va_arg(ap, void *); /* every fcntl argument is passed in one register-sized slot */
  int r = real(fd, cmd, arg);
  if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) opened(r);
  return r;
}
int fcntl(int fd, int cmd, ...) {
  NEXT(fcntl, int, (int, int, ...));
  va_list ap;
  va_start(ap, cmd);
  int r = fcntl_common(real_fcntl, fd, cmd, ap);
  va_end(ap);
  return r;
}
int fcntl64(int fd, int cmd, ...);
int fcntl64(int fd, int cmd, ...) {
  NEXT(fcntl64, int, (int, int, ...));
  va_list ap;
  va_start(ap, cmd);
  int r = fcntl_common(real_fcntl64, fd, cmd, ap);
  va_end(ap);
  return r;
}

int close(int fd) {
  NEXT(close, int, (int));
  int r = real_close(fd);
  gate_forget(fd);
  return r;
}
int close_range(unsigned first, unsigned last, int flags) {
  NEXT(close_range, int, (unsigned, unsigned, int));
  int r = real_close_range(first, last, flags);
  if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC)) gate_forget_range(first, last);
  return r;
}

// ---- content through descriptors ------------------------------------------------------------------------------

ssize_t read(int fd, void *buf, size_t n) {
  GATE(fd);
  NEXT(read, ssize_t, (int, void *, size_t));
  return real_read(fd, buf, n);
}
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen) {
  GATE(fd);
  NEXT(__read_chk, ssize_t, (int, void *, size_t, size_t));
  return real___read_chk(fd, buf, n, buflen);
}
ssize_t pread(int fd, void *buf, size_t n, off_t at) {
  GATE(fd);
  NEXT(pread, ssize_t, (int, void *, size_t, off_t));
  return real_pread(fd, buf, n, at);
}
ssize_t pread64(int fd, void *buf, size_t n, off64_t at) {
  GATE(fd);
  NEXT(pread64, ssize_t, (int, void *, size_t, off64_t));
  return real_pread64(fd, buf, n, at);
}
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t at, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t n, off_t at, size_t buflen) {
  GATE(fd);
  NEXT(__pread_chk, ssize_t, (int, void *, size_t, off_t, size_t));
  return real___pread_chk(fd, buf, n, at, buflen);
}
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t at, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t n, off64_t at, size_t buflen) {
  GATE(fd);
  NEXT(__pread64_chk, ssize_t, (int, void *, size_t, off64_t, size_t));
  return real___pread64_chk(fd, buf, n, at, buflen);
}
ssize_t readv(int fd, const struct iovec *iov, int n) {
  GATE(fd);
  NEXT(readv, ssize_t, (int, const struct iovec *, int));
  return real_readv(fd, iov, n);
}
ssize_t preadv(int fd, const struct iovec *iov, int n, off_t at) {
  GATE(fd);
  NEXT(preadv, ssize_t, (int, const struct iovec *, int, off_t));
  return real_preadv(fd, iov, n, at);
}
ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t at) {
  GATE(fd);
  NEXT(preadv64, ssize_t, (int, const struct iovec *, int, off64_t));
  return real_preadv64(fd, iov, n, at);
}
ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t at, int flags) {
  GATE(fd);
  NEXT(preadv2, ssize_t, (int, const struct iovec *, int, off_t, int));
  return real_preadv2(fd, iov, n, at, flags);
}
ssize_t preadv64v2(int fd, const struct iovec *iov, int n, off64_t at, int flags) {
  GATE(fd);
  NEXT(preadv64v2, ssize_t, (int, const struct iovec *, int, off64_t, int));
  return real_preadv64v2(fd, iov, n, at, flags);
}
ssize_t sendfile(int out, int in, off_t *at, size_t n) {
  GATE(in);
  NEXT(sendfile, ssize_t, (int, int, off_t *, size_t));
  return real_sendfile(out, in, at, n);
}
ssize_t sendfile64(int out, int in, off64_t *at, size_t n) {
  GATE(in);
  NEXT(sendfile64, ssize_t, (int, int, off64_t *, size_t));
  return real_sendfile64(out, in, at, n);
}
ssize_t copy_file_range(int in, off64_t *in_at, int out, off64_t *out_at, size_t n, unsigned flags) {
  GATE(in);
  NEXT(copy_file_range, ssize_t, (int, off64_t *, int, off64_t *, size_t, unsigned));
  return real_copy_file_range(in, in_at, out, out_at, n, flags);
}
ssize_t splice(int in, off64_t *in_at, int out, off64_t *out_at, size_t n, unsigned flags) {
  GATE(in);
  NEXT(splice, ssize_t, (int, off64_t *, int, off64_t *, size_t, unsigned));
  return real_splice(in, in_at, out, out_at, n, flags);
}

#undef FAILED
#define FAILED MAP_FAILED
static int maps_content(int prot, int flags, int fd) { return fd >= 0 && !(flags & MAP_ANONYMOUS) && (prot & (PROT_READ | PROT_EXEC)); }
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t at) {
  if (maps_content(prot, flags, fd)) GATE(fd);
  NEXT(mmap, void *, (void *, size_t, int, int, int, off_t));
  return real_mmap(addr, len, prot, flags, fd, at);
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t at) {
  if (maps_content(prot, flags, fd)) GATE(fd);
  NEXT(mmap64, void *, (void *, size_t, int, int, int, off64_t));
  return real_mmap64(addr, len, prot, flags, fd, at);
}

// ---- stdio: gated when opened for reading ---------------------------------------------------------------------
#undef FAILED
#define FAILED NULL

static int reads(const char *m) { return m && (m[0] == 'r' || strchr(m, '+')); }

static FILE *gated_stream(FILE *f, const char *m) {
  if (!f || !reads(m)) return f;
  int fd = fileno(f);
  gate_forget(fd);
  int refused = gate_fd(fd);
  if (!refused) return f;
  static int (*real_fclose)(FILE *);
  if (!real_fclose) real_fclose = (int (*)(FILE *))dlsym(RTLD_NEXT, "fclose");
  if (real_fclose) real_fclose(f);
  gate_forget(fd);
  errno = refused;
  return NULL;
}

FILE *fopen(const char *path, const char *m) {
  NEXT(fopen, FILE *, (const char *, const char *));
  return gated_stream(real_fopen(path, m), m);
}
FILE *fopen64(const char *path, const char *m) {
  NEXT(fopen64, FILE *, (const char *, const char *));
  return gated_stream(real_fopen64(path, m), m);
}
FILE *freopen(const char *path, const char *m, FILE *f) {
  NEXT(freopen, FILE *, (const char *, const char *, FILE *));
  return gated_stream(real_freopen(path, m, f), m);
}
FILE *freopen64(const char *path, const char *m, FILE *f) {
  NEXT(freopen64, FILE *, (const char *, const char *, FILE *));
  return gated_stream(real_freopen64(path, m, f), m);
}
FILE *fdopen(int fd, const char *m) {
  if (reads(m)) GATE(fd); /* before the stream exists: a refused fdopen leaves the caller's fd open, as POSIX says */
  NEXT(fdopen, FILE *, (int, const char *));
  return real_fdopen(fd, m);
}

#undef FAILED
#define FAILED EOF
int fclose(FILE *f) {
  NEXT(fclose, int, (FILE *));
  int fd = f ? fileno(f) : -1;
  int r = real_fclose(f);
  gate_forget(fd);
  return r;
}

// ---- programs: gated before the kernel loads them -------------------------------------------------------------
#undef FAILED
#define FAILED (-1)

#define GATE_PATH(p)                   \
  {                                    \
    int refused_ = gate_path(p);       \
    if (refused_) {                    \
      errno = refused_;                \
      return FAILED;                   \
    }                                  \
  }

/* The file execvp/posix_spawnp would run: the first executable match on PATH. */
static const char *search(const char *file, char *out, size_t cap) {
  if (!file || strchr(file, '/')) return file;
  const char *path = getenv("PATH");
  if (!path) path = "/usr/local/bin:/bin:/usr/bin";
  for (const char *p = path; *p;) {
    const char *colon = strchr(p, ':');
    size_t l = colon ? (size_t)(colon - p) : strlen(p);
    if (l && l + strlen(file) + 2 <= cap) {
      memcpy(out, p, l);
      out[l] = '/';
      strcpy(out + l + 1, file);
      if (access(out, X_OK) == 0) return out;
    }
    if (!colon) break;
    p = colon + 1;
  }
  return NULL;
}

int execve(const char *path, char *const argv[], char *const envp[]) {
  GATE_PATH(path);
  NEXT(execve, int, (const char *, char *const[], char *const[]));
  return real_execve(path, argv, envp);
}
int execv(const char *path, char *const argv[]) {
  GATE_PATH(path);
  NEXT(execv, int, (const char *, char *const[]));
  return real_execv(path, argv);
}
int execvp(const char *file, char *const argv[]) {
  char found[4096];
  GATE_PATH(search(file, found, sizeof found));
  NEXT(execvp, int, (const char *, char *const[]));
  return real_execvp(file, argv);
}
int execvpe(const char *file, char *const argv[], char *const envp[]) {
  char found[4096];
  GATE_PATH(search(file, found, sizeof found));
  NEXT(execvpe, int, (const char *, char *const[], char *const[]));
  return real_execvpe(file, argv, envp);
}
int execveat(int dir, const char *path, char *const argv[], char *const envp[], int flags) {
  if (!path[0] && (flags & AT_EMPTY_PATH)) {
    gate_forget(dir);
    GATE(dir);
  } else {
    /* the file the kernel would load, opened as it would resolve it (relative to dir) */
    int fd = openat(dir, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | ((flags & AT_SYMLINK_NOFOLLOW) ? O_NOFOLLOW : 0));
    if (fd >= 0) {
      int refused = gate_fd(fd);
      close(fd);
      if (refused) {
        errno = refused;
        return -1;
      }
    }
  }
  NEXT(execveat, int, (int, const char *, char *const[], char *const[], int));
  return real_execveat(dir, path, argv, envp, flags);
}
int fexecve(int fd, char *const argv[], char *const envp[]) {
  gate_forget(fd); /* the program's content, whatever this fd was used for before */
  GATE(fd);
  NEXT(fexecve, int, (int, char *const[], char *const[]));
  return real_fexecve(fd, argv, envp);
}

#undef FAILED
#define FAILED ENOSYS
/* posix_spawn reports errors as its return value, not through errno. */
int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr, char *const argv[],
                char *const envp[]) {
  int refused = gate_path(path);
  if (refused) return refused;
  NEXT(posix_spawn, int, (pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *, char *const[], char *const[]));
  return real_posix_spawn(pid, path, fa, attr, argv, envp);
}
int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr, char *const argv[],
                 char *const envp[]) {
  char found[4096];
  int refused = gate_path(search(file, found, sizeof found));
  if (refused) return refused;
  NEXT(posix_spawnp, int, (pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *, char *const[], char *const[]));
  return real_posix_spawnp(pid, file, fa, attr, argv, envp);
}

// ---- loading ------------------------------------------------------------------------------------------------

/* Resolve the next definitions of the async-signal-safe entry points now, at load time: dlsym may allocate, and a
 * signal handler's first read() must not be where it happens. Each call fails at once (a bad fd or a NULL path). */
static void prime(void) {
  int saved = errno;
  char c;
  struct iovec v = {&c, 1};
  (void)!read(-1, &c, 0);
  (void)!pread(-1, &c, 0, 0);
  (void)!pread64(-1, &c, 0, 0);
  (void)!readv(-1, &v, 1);
  (void)!preadv(-1, &v, 1, 0);
  (void)!close(-1);
  (void)!dup(-1);
  (void)!dup2(-1, -1);
  static char *const none[] = {NULL};
  (void)!open("", O_RDONLY);
  (void)!openat(-1, "", O_RDONLY);
  (void)!fcntl(-1, F_GETFD);
  (void)!execve("", none, none);
  (void)!fexecve(-1, none, none);
  errno = saved;
}
