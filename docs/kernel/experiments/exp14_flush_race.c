/* exp14_flush_race.c - FAN_MARK_FLUSH racing reads: the one place blessd still destroys inode marks in use (forget
 * everything: queue overflow, a full verdict table, a generation bump). 200 files on a private ext4, each with an
 * inode mark of the gate group that ignores nothing (a deny mark's shape: FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM); the
 * gate group's filesystem mark asks for FAN_PRE_ACCESS. Two reader processes read the files in turn; with a third
 * argument a thread flushes the group's inode marks and adds them again, in a loop. A read that raised no
 * FAN_PRE_ACCESS passed unjudged. Usage: exp14_flush_race <private ext4 mountpoint> <reads per reader> [flush].
 * Run by exp14_flush_race.sh. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#define N 200
static int gate; static volatile long *events; static char path[N][80]; static volatile int stop;
static void *gate_thread(void *a) {
  char buf[65536];
  for (;;) {
    ssize_t len = read(gate, buf, sizeof buf);
    struct fanotify_event_metadata *md = (void *)buf;
    for (; len > 0 && FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
      if (md->fd < 0) continue;
      __atomic_add_fetch(events, 1, __ATOMIC_SEQ_CST);
      struct fanotify_response r = {md->fd, FAN_ALLOW}; write(gate, &r, sizeof r); close(md->fd);
    }
  }
  return 0;
}
static void mark_all(void) {
  for (int i = 0; i < N; i++) fanotify_mark(gate, FAN_MARK_ADD, FAN_OPEN_EXEC_PERM | FAN_OPEN_PERM, AT_FDCWD, path[i]);
}
static void *flusher(void *a) {
  long flushes = 0;
  while (!stop) { fanotify_mark(gate, FAN_MARK_FLUSH, 0, AT_FDCWD, NULL); mark_all(); flushes++; }
  printf("flushes=%ld\n", flushes);
  return 0;
}
int main(int argc, char **argv) {
  const char *mnt = argv[1]; long per = atol(argv[2]); int flush = argc > 3;
  events = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  for (int i = 0; i < N; i++) { snprintf(path[i], 80, "%s/d%d", mnt, i); int fd = open(path[i], O_CREAT | O_TRUNC | O_WRONLY, 0644); write(fd, "x\n", 2); close(fd); }
  gate = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE);
  if (fanotify_mark(gate, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_PRE_ACCESS | FAN_OPEN_EXEC_PERM, AT_FDCWD, mnt)) { perror("mark"); return 1; }
  mark_all();
  pthread_t t, f; pthread_create(&t, 0, gate_thread, 0);
  if (flush) pthread_create(&f, 0, flusher, 0);
  alarm(300);
  int K = 2; long silent = 0;
  for (int k = 0; k < K; k++) if (fork() == 0) {
    long s = 0; char b[8];
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
  for (int k = 0; k < K; k++) { int st; wait(&st); silent += WEXITSTATUS(st); }
  stop = 1; if (flush) pthread_join(f, 0);
  printf("flush=%d reads=%ld silent=%ld (capped at 255 per reader)\n", flush, per * K, silent);
  return 0;
}
