/* The kernel's floor, in two shapes.
 * `floor DIR` (blessed): a fanotify group set up like blessd's gate in read mode (pre-content class, a filesystem mark
 * for open notices, pre-access and exec) with an evictable ignore mark on every regular file under DIR — the verdict
 * cache, and nothing else.
 * `floor DIR cold`: the same group with blessd's read-mode filesystem mark (pre-access and exec, no open event) and no
 * ignore mark: every read is a permission event, answered at once — what any listener costs per forwarded event.
 * A thread answers "allow" to any event that arrives and counts it. Prints "ready FILES" once every mark is placed;
 * on stdin EOF prints "events N" and exits (closing the group removes every mark). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <unistd.h>

#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000ULL
#endif
#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif

static int gate;
static atomic_long events;
static long files;
static const unsigned long long kIgnore = FAN_OPEN | FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS;

static void *reader(void *arg) {
  (void)arg;
  char buf[8192] __attribute__((aligned(8)));
  struct pollfd p = {.fd = gate, .events = POLLIN};
  for (;;) {
    if (poll(&p, 1, -1) < 0) continue;
    ssize_t n = read(gate, buf, sizeof buf);
    if (n <= 0) continue;
    for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
      atomic_fetch_add(&events, 1);
      if (m->mask & (FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS)) {
        struct fanotify_response r = {.fd = m->fd, .response = FAN_ALLOW};
        if (write(gate, &r, sizeof r) < 0) perror("answer");
      }
      if (m->fd >= 0) close(m->fd);
    }
  }
  return NULL;
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st, (void)ftw;
  if (type != FTW_F) return 0;
  int fd = open(path, O_RDONLY | O_NOATIME);
  if (fd < 0) return 0;
  if (fanotify_mark(gate, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE, kIgnore, fd, NULL) == 0) files++;
  else perror("ignore mark");
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || (argc > 2 && strcmp(argv[2], "cold") != 0)) {
    fprintf(stderr, "usage: floor DIR [cold]\n");
    return 2;
  }
  const int cold = argc > 2;
  gate = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS, O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NOATIME);
  if (gate < 0) {
    perror("fanotify_init");
    return 1;
  }
  const unsigned long long mask = cold ? FAN_PRE_ACCESS | FAN_OPEN_EXEC_PERM : FAN_OPEN | FAN_PRE_ACCESS | FAN_OPEN_EXEC_PERM;
  if (fanotify_mark(gate, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, mask, AT_FDCWD, argv[1]) < 0) {
    perror("fanotify_mark(filesystem)");
    return 1;
  }
  pthread_t t;
  pthread_create(&t, NULL, reader, NULL);
  if (!cold) nftw(argv[1], visit, 64, FTW_PHYS | FTW_MOUNT);
  usleep(100000); /* let the walk's own open notices drain, then count only what the bench causes */
  atomic_store(&events, 0);
  printf("ready %ld\n", files);
  fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  printf("events %ld\n", atomic_load(&events));
  fflush(stdout);
  return 0;
}
