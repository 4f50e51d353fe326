/* exp15_forget_all.c - forgetting every inode mark without letting an access pass unseen.
 * The setup of exp14 (200 files on a private ext4, each with a deny-shaped inode mark of the gate group, whose
 * filesystem mark asks for FAN_PRE_ACCESS; two reader processes read the files in turn, and a read that raised no
 * FAN_PRE_ACCESS in any group passed unjudged), with a thread that forgets every inode mark in a loop, one of:
 *   flush  FAN_MARK_FLUSH of the group's inode marks, then add them again (exp14; what blessd did)
 *   naive  a new group gets the filesystem mark and the inode marks, then the old group is closed at once
 *   swap   a new group gets the filesystem mark and the inode marks; an SRCU fence (close a scratch group that holds
 *          one mark: fsnotify_destroy_group waits for the mark reaper, which runs synchronize_srcu); then the old
 *          group's marks are flushed, inode and filesystem, while it stays open and answered; it is closed later
 *          (here: once 4 newer groups retired, at least 20 ms after its flush)
 *   nofence  swap without the fence
 *   bare     swap, but the fresh group gets the filesystem mark only (what a daemon that forgets would give it): the
 *            old group's inode marks are then what the fresh group's own step pins while they die (see .sh)
 *   inplace  no mark is destroyed: each inode mark loses the deny bit (FAN_OPEN_PERM) and keeps FAN_OPEN_EXEC_PERM
 *            in its mask, then gets the bit back
 * (naive closes the old group with events still queued or in flight: the kernel answers those FAN_ALLOW itself.)
 * Each group has its own reader thread that answers every event FAN_ALLOW and counts it.
 * Usage: exp15_forget_all <private ext4 mountpoint> <reads per reader> <flush|naive|nofence|swap|bare|inplace>. Run by exp15_forget_all.sh. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#define N 200
#define RETIRED 4
static const char *mnt; static volatile long *events; static char path[N][80]; static volatile int stop;
struct group { int fd; volatile int stop; pthread_t t; };
static void *group_thread(void *a) {
  struct group *g = a; char buf[65536];
  for (;;) {
    struct pollfd p = {g->fd, POLLIN, 0};
    poll(&p, 1, 5);
    ssize_t len = read(g->fd, buf, sizeof buf);
    if (g->stop == 2 || (len < 0 && errno == EAGAIN && g->stop)) break;  /* told to stop (drained, or at once) */
    struct fanotify_event_metadata *md = (void *)buf;
    for (; len > 0 && FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
      if (md->fd < 0) continue;
      __atomic_add_fetch(events, 1, __ATOMIC_SEQ_CST);
      struct fanotify_response r = {md->fd, FAN_ALLOW}; write(g->fd, &r, sizeof r); close(md->fd);
    }
  }
  return 0;
}
static struct group *new_group(int inode_marks) {
  struct group *g = calloc(1, sizeof *g);
  /* A closed group is only released once every access it pinned returned: under this load, naive closes can reach
   * the per-user group limit for a moment (EMFILE). */
  for (int tries = 0; (g->fd = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE)) < 0 && errno == EMFILE && tries < 5000; tries++) usleep(1000);
  if (g->fd < 0) { perror("fanotify_init"); exit(1); }
  if (fanotify_mark(g->fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_PRE_ACCESS | FAN_OPEN_EXEC_PERM, AT_FDCWD, mnt)) { perror("mark"); exit(1); }
  if (inode_marks)
    for (int i = 0; i < N; i++) fanotify_mark(g->fd, FAN_MARK_ADD, FAN_OPEN_EXEC_PERM | FAN_OPEN_PERM, AT_FDCWD, path[i]);
  pthread_create(&g->t, 0, group_thread, g);
  return g;
}
static void end_group(struct group *g, int at_once) { g->stop = at_once ? 2 : 1; pthread_join(g->t, 0); close(g->fd); free(g); }
static void fence(void) {
  int s = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY);
  if (s < 0 || fanotify_mark(s, FAN_MARK_ADD, FAN_CLOSE_NOWRITE, AT_FDCWD, path[0])) { perror("fence"); exit(1); }
  close(s);
}
static struct group *cur;
static int64_t now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
static void *forgetter(void *a) {
  const char *how = a; long rounds = 0; struct group *retired[RETIRED] = {0}; int64_t since[RETIRED] = {0}; int r = 0;
  int64_t fence_ns = 0;
  while (!stop) {
    if (!strcmp(how, "flush")) {
      fanotify_mark(cur->fd, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL);
      for (int i = 0; i < N; i++) fanotify_mark(cur->fd, FAN_MARK_ADD, FAN_OPEN_EXEC_PERM | FAN_OPEN_PERM, AT_FDCWD, path[i]);
    } else if (!strcmp(how, "inplace")) {
      for (int i = 0; i < N; i++) fanotify_mark(cur->fd, FAN_MARK_REMOVE, FAN_OPEN_PERM, AT_FDCWD, path[i]);
      for (int i = 0; i < N; i++) fanotify_mark(cur->fd, FAN_MARK_ADD, FAN_OPEN_PERM, AT_FDCWD, path[i]);
    } else {
      struct group *old = cur;
      cur = new_group(strcmp(how, "bare") != 0);
      if (!strcmp(how, "naive")) { end_group(old, 1); }
      else {
        int64_t t0 = now_ns();
        if (strcmp(how, "nofence")) fence();
        fence_ns += now_ns() - t0;
        fanotify_mark(old->fd, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL);
        fanotify_mark(old->fd, FAN_MARK_FLUSH | FAN_MARK_FILESYSTEM, 0, AT_FDCWD, NULL);
        if (retired[r]) { while (now_ns() - since[r] < 20000000) usleep(1000); end_group(retired[r], 0); }
        retired[r] = old; since[r] = now_ns(); r = (r + 1) % RETIRED;
      }
    }
    rounds++;
  }
  for (int i = 0; i < RETIRED; i++) if (retired[i]) end_group(retired[i], 0);
  printf("%s rounds=%ld", how, rounds);
  if (!strcmp(how, "swap")) printf(" fence_us_mean=%.1f", rounds ? fence_ns / 1e3 / rounds : 0.0);
  printf("\n");
  return 0;
}
int main(int argc, char **argv) {
  mnt = argv[1]; long per = atol(argv[2]); const char *how = argv[3];
  events = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  volatile long *go = events + 1;
  for (int i = 0; i < N; i++) { snprintf(path[i], 80, "%s/d%d", mnt, i); int fd = open(path[i], O_CREAT | O_TRUNC | O_WRONLY, 0644); write(fd, "x\n", 2); close(fd); }
  alarm(300);
  /* The readers are forked before any group exists: a child holding a copy of a group's fd would keep it from being
   * released when we close it. */
  int K = 2; long silent = 0;
  for (int k = 0; k < K; k++) if (fork() == 0) {
    long s = 0; char b[8];
    while (!__atomic_load_n(go, __ATOMIC_SEQ_CST)) usleep(1000);
    for (long j = 0; j < per; j++) {
      int i = (int)(j % N);
      int fd = open(path[i], O_RDONLY);
      long before = __atomic_load_n(events, __ATOMIC_SEQ_CST);
      pread(fd, b, sizeof b, 0);
      if (__atomic_load_n(events, __ATOMIC_SEQ_CST) == before) s++;
      close(fd);
    }
    _exit(s > 255 ? 255 : (int)s);
  }
  cur = new_group(1);
  pthread_t f; pthread_create(&f, 0, forgetter, (void *)how);
  __atomic_store_n(go, 1, __ATOMIC_SEQ_CST);
  for (int k = 0; k < K; k++) { int st; wait(&st); silent += WEXITSTATUS(st); }
  stop = 1; pthread_join(f, 0);
  printf("%s reads=%ld silent=%ld (capped at 255 per reader)\n", how, per * K, silent);
  end_group(cur, 0);
  return 0;
}
