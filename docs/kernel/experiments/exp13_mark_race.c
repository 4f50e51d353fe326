/* exp13_mark_race.c - a permission event that races the destruction of an inode mark is let through unseen.
 * blessd's pattern: a gate group (FAN_CLASS_PRE_CONTENT, filesystem mark FAN_PRE_ACCESS | FAN_OPEN_EXEC_PERM, every
 * event answered allow and counted per file), a change group (FID, FAN_MODIFY | FAN_CLOSE_WRITE), 500 files each
 * blessed with an evictable ignore mark; five processes then write each file, close it, and read it at once. A read
 * that raised no event was served content nobody judged. Variants (environment):
 *   (none)    nothing removes marks: the write's own clear of the ignore mask is all there is
 *   REMOVE=1  the change thread removes the ignore bits by handle, as blessd's reader thread does; the mark, whose
 *             ignore mask the write already cleared, is destroyed by that removal
 *   BASE=1    the same, but every inode mark also keeps FAN_OPEN_EXEC_PERM in its own mask: never destroyed
 * Usage: exp13_mark_race <mountpoint of a private ext4> <rounds>. Run by exp13_mark_race.sh. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x400
#endif
static const char *MNT;
#define N 500
#define K 5
static const uint64_t IGN = FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS | FAN_OPEN;
static int gate, chg, mountfd;
static volatile int *events;  // per file index
static unsigned long inos[N];
static int idx_of(unsigned long ino) { for (int i = 0; i < N; i++) if (inos[i] == ino) return i; return -1; }
static int do_remove;
static long removed, remove_fail;

static void *gate_thread(void *a) {
  char buf[65536];
  for (;;) {
    ssize_t len = read(gate, buf, sizeof buf);
    if (len <= 0) continue;
    struct fanotify_event_metadata *md = (void *)buf;
    for (; FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
      if (md->fd < 0) continue;
      struct stat st;
      if (fstat(md->fd, &st) == 0) { int i = idx_of(st.st_ino); if (i >= 0) __atomic_add_fetch(&events[i], 1, __ATOMIC_SEQ_CST); }
      struct fanotify_response r = {md->fd, FAN_ALLOW};
      write(gate, &r, sizeof r);
      close(md->fd);
    }
  }
  return 0;
}

static void *change_thread(void *a) {
  char buf[65536];
  for (;;) {
    ssize_t len = read(chg, buf, sizeof buf);
    if (len <= 0) continue;
    struct fanotify_event_metadata *md = (void *)buf;
    for (; FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
      if (!do_remove) continue;
      struct fanotify_event_info_fid *fid = (void *)(md + 1);
      struct file_handle *fh = (void *)fid->handle;
      int fd = open_by_handle_at(mountfd, fh, O_PATH | O_CLOEXEC);
      if (fd < 0) { remove_fail++; continue; }
      char p[40]; snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
      if (fanotify_mark(gate, FAN_MARK_REMOVE | FAN_MARK_IGNORE, IGN, AT_FDCWD, p) == 0) removed++; else remove_fail++;
      close(fd);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: %s <private ext4 mountpoint> <rounds>\n", argv[0]); return 2; }
  MNT = argv[1];
  int rounds = atoi(argv[2]);
  do_remove = getenv("REMOVE") != NULL;
  events = mmap(0, sizeof(int) * N, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  mountfd = open(MNT, O_RDONLY | O_DIRECTORY);
  static char path[N][64];
  for (int i = 0; i < N; i++) {
    snprintf(path[i], 64, "%s/f%d", MNT, i);
    int fd = open(path[i], O_CREAT | O_TRUNC | O_WRONLY, 0644); write(fd, "clean clean clean clean\n", 24); close(fd);
    struct stat st; stat(path[i], &st); inos[i] = st.st_ino;
  }
  gate = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE);
  chg = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDONLY);
  if (gate < 0 || chg < 0) { perror("init"); return 1; }
  if (fanotify_mark(gate, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_PRE_ACCESS | FAN_OPEN_EXEC_PERM, AT_FDCWD, MNT)) { perror("mark gate"); return 1; }
  if (fanotify_mark(chg, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, MNT)) { perror("mark chg"); return 1; }
  pthread_t t1, t2;
  pthread_create(&t1, 0, gate_thread, 0);
  pthread_create(&t2, 0, change_thread, 0);
  alarm(600);
  long total = 0, silent = 0;
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < N; i++) {
      int fd = open(path[i], O_WRONLY | O_TRUNC); write(fd, "clean clean clean clean\n", 24); close(fd);
    }
    usleep(20000);  // let the change thread drain this round's rewrites before the blesses
    for (int i = 0; i < N; i++) {
      int fd = open(path[i], O_RDONLY);
      if (getenv("BASE") && fanotify_mark(gate, FAN_MARK_ADD | FAN_MARK_EVICTABLE, FAN_OPEN_EXEC_PERM, fd, NULL)) perror("base");
      if (fanotify_mark(gate, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE, IGN, fd, NULL)) perror("bless");
      close(fd);
    }
    for (int k = 0; k < K; k++) {
      if (fork() == 0) {
        int s = 0;
        for (int i = k * (N / K); i < (k + 1) * (N / K); i++) {
          int fd = open(path[i], O_WRONLY); pwrite(fd, "EVIL", 4, 0); close(fd);
          int before = __atomic_load_n(&events[i], __ATOMIC_SEQ_CST);
          char b[64]; fd = open(path[i], O_RDONLY); pread(fd, b, sizeof b, 0); close(fd);
          if (__atomic_load_n(&events[i], __ATOMIC_SEQ_CST) == before) { s++; fprintf(stderr, "silent read of f%d round %d\n", i, r); }
        }
        _exit(s > 255 ? 255 : s);
      }
    }
    for (int k = 0; k < K; k++) { int st; wait(&st); silent += WEXITSTATUS(st); }
    total += N;
  }
  printf("remove=%d base=%d reads=%ld silent=%ld removals=%ld removals_failed=%ld\n", do_remove, getenv("BASE") != NULL, total, silent, removed, remove_fail);
  return 0;
}
