/* exp12_two_groups.c - two fanotify listeners (two processes, as two daemons) guarding one superblock: who is asked,
 * in which order, and which of listener A's own accesses raise events in listener B's group.
 *
 * Listener A and listener B are forked children, each with its own FAN_CLASS_PRE_CONTENT group and a filesystem
 * mark (FAN_PRE_ACCESS, as blessd's read mode); B also has a FID change group (FAN_ATTRIB). The parent reads the
 * file once per step; A's handler does one kind of access of its own per step (from a second thread: A's own
 * accesses raise events in A's group too, which its loop answers at once by pid, as blessd's reader thread does).
 * B answers everything at once, except in the "B stalls A" step, where it holds A's accesses for 500 ms (as a
 * daemon would that waits for A's lease while A's scan reads are held by it).
 * Marks only the private ext4 image exp12_two_groups.sh mounts; every event is answered; alarm() bounds it.
 * Build and run: sh docs/kernel/experiments/exp12_two_groups.sh (its output: exp12_two_groups.out)
 */
#include "fan_compat.h"
#include <pthread.h>
#include <sys/xattr.h>

enum { ACT_NONE, ACT_EVENT_FD_READ, ACT_PATH_READ, ACT_PROC_REOPEN_READ, ACT_EVENT_FD_XATTR, ACT_IGNORE_MARK, ACT_HOLD };
static const char *act_name[] = {"nothing", "read through the event fd", "open by path + read",
                                 "reopen /proc/self/fd/<event fd> + read", "fsetxattr on the event fd",
                                 "ignore mark on A's group", "hold the event"};

struct shared {
  volatile int action;       /* what A does with the parent's event */
  volatile int b_stall_a_ms; /* B holds accesses by A's pid this long */
  volatile int b_deny_reader;  /* B denies the reader's access (EPERM) */
  volatile int pid_a, pid_b;
  pthread_mutex_t mu;
  char log[8192];            /* "X:who:mask " per event seen since the step began */
  double nested_ms;          /* how long A's own access took */
};
static struct shared *sh;
static char file[512], file2[512];
static const char *target = file; /* what the reader reads */

static void note(char group, int pid, uint64_t mask) {
  const char *who = pid == sh->pid_a ? "A" : pid == sh->pid_b ? "B" : pid == getppid() ? "reader" : "?";
  char s[96];
  snprintf(s, sizeof s, "%c<-%s:%s%s%s ", group, who, mask & FAN_PRE_ACCESS ? "PRE_ACCESS" : "",
           mask & FAN_ATTRIB ? "ATTRIB" : "", mask & FAN_OPEN_PERM ? "OPEN_PERM" : "");
  pthread_mutex_lock(&sh->mu);
  if (strlen(sh->log) + strlen(s) < sizeof sh->log) strcat(sh->log, s);
  pthread_mutex_unlock(&sh->mu);
}

static void answer(int g, int fd, uint32_t r) {
  struct fanotify_response resp = {.fd = fd, .response = r};
  if (write(g, &resp, sizeof resp) != sizeof resp) perror("answer");
  close(fd);
}

static int make_group(void) {
  int g = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_UNLIMITED_QUEUE, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (g < 0 || fanotify_mark(g, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_PRE_ACCESS, AT_FDCWD, file) < 0) {
    perror("gate group");
    exit(1);
  }
  return g;
}

/* A: one event of the reader, handled on its own thread while the loop goes on answering A's own accesses. */
struct job { int g, fd; };
static void *a_handle(void *arg) {
  struct job *j = arg;
  char b[64], link[64];
  double t = now_ms();
  int fd;
  switch (sh->action) {
    case ACT_EVENT_FD_READ:
      (void)!pread(j->fd, b, sizeof b, 0);
      break;
    case ACT_PATH_READ:
      fd = open(file, O_RDONLY);
      (void)!pread(fd, b, sizeof b, 0);
      close(fd);
      break;
    case ACT_PROC_REOPEN_READ:
      snprintf(link, sizeof link, "/proc/self/fd/%d", j->fd);
      fd = open(link, O_RDONLY);
      (void)!pread(fd, b, sizeof b, 0);
      close(fd);
      break;
    case ACT_EVENT_FD_XATTR:
      if (fsetxattr(j->fd, "user.exp12", "x", 1, 0) < 0) perror("fsetxattr");
      break;
    case ACT_HOLD:
      pause(); /* until killed */
      break;
    case ACT_IGNORE_MARK:
      if (fanotify_mark(j->g, FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE, FAN_PRE_ACCESS, j->fd, NULL) < 0) perror("ignore mark");
      break;
  }
  sh->nested_ms = now_ms() - t;
  answer(j->g, j->fd, FAN_ALLOW);
  free(j);
  return NULL;
}

static void listener_a(void) {
  int g = make_group();
  char buf[4096];
  alarm(30);
  for (;;) {
    ssize_t n = read(g, buf, sizeof buf);
    if (n <= 0) continue;
    for (struct fanotify_event_metadata *md = (void *)buf; FAN_EVENT_OK(md, n); md = FAN_EVENT_NEXT(md, n)) {
      note('A', md->pid, md->mask);
      if (md->pid == getpid()) { answer(g, md->fd, FAN_ALLOW); continue; } /* own access: at once */
      struct job *j = malloc(sizeof *j);
      j->g = g;
      j->fd = md->fd;
      pthread_t th;
      pthread_create(&th, NULL, a_handle, j);
      pthread_detach(th);
    }
  }
}

static void listener_b(void) {
  int g = make_group();
  int c = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_DFID_NAME_TARGET, O_RDONLY);
  if (c < 0 || fanotify_mark(c, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_ATTRIB, AT_FDCWD, file) < 0) perror("change group");
  char buf[4096];
  alarm(30);
  for (;;) {
    struct pollfd p[2] = {{.fd = g, .events = POLLIN}, {.fd = c, .events = POLLIN}};
    if (poll(p, 2, -1) <= 0) continue;
    if (p[1].revents) {
      ssize_t n = read(c, buf, sizeof buf);
      for (struct fanotify_event_metadata *md = (void *)buf; n > 0 && FAN_EVENT_OK(md, n); md = FAN_EVENT_NEXT(md, n)) note('b', md->pid, md->mask);
    }
    if (!p[0].revents) continue;
    ssize_t n = read(g, buf, sizeof buf);
    for (struct fanotify_event_metadata *md = (void *)buf; n > 0 && FAN_EVENT_OK(md, n); md = FAN_EVENT_NEXT(md, n)) {
      note('B', md->pid, md->mask);
      if (md->pid == sh->pid_a && sh->b_stall_a_ms) usleep(sh->b_stall_a_ms * 1000);
      answer(g, md->fd, md->pid == getppid() && sh->b_deny_reader ? FAN_DENY : FAN_ALLOW);
    }
  }
}

static void step(const char *what, int action, int stall) {
  sh->action = action;
  sh->b_stall_a_ms = stall;
  sh->log[0] = 0;
  char b[64];
  double t = now_ms();
  int fd = open(target, O_RDONLY);
  ssize_t r = pread(fd, b, sizeof b, 0);
  close(fd);
  double ms = now_ms() - t;
  usleep(100 * 1000); /* lets B's change group report an ATTRIB that comes after the answers (notification only) */
  printf("%-44s reader's pread %zd in %7.1f ms; A's own access %6.1f ms; events: %s\n", what, r, ms, sh->nested_ms, sh->log);
  fflush(stdout);
}

static void *kill_a_soon(void *arg) {
  usleep(300 * 1000);
  kill(*(int *)arg, SIGKILL);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) return fprintf(stderr, "usage: %s <mounted private ext4 dir>\n", argv[0]), 2;
  snprintf(file, sizeof file, "%s/data.bin", argv[1]);
  snprintf(file2, sizeof file2, "%s/data2.bin", argv[1]);
  alarm(60);
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutex_init(&sh->mu, &ma);
  int a = fork();
  if (a == 0) listener_a();
  sh->pid_a = a;
  int b = fork();
  if (b == 0) listener_b();
  sh->pid_b = b;
  usleep(300 * 1000); /* both marks in place (an experiment: the steps below show it if not) */
  printf("groups: A pid %d, B pid %d, reader pid %d (A<- / B<-: A's / B's gate group; b<-: B's change group)\n", a, b, getpid());
  for (int i = ACT_NONE; i <= ACT_EVENT_FD_XATTR; i++) step(act_name[i], i, 0);
  step("B stalls A 500 ms; A: open by path + read", ACT_PATH_READ, 500);
  step("B stalls A 500 ms; A: read through event fd", ACT_EVENT_FD_READ, 500);
  sh->b_deny_reader = 1;
  step("B denies the reader", ACT_NONE, 0);
  sh->b_deny_reader = 0;
  step(act_name[ACT_IGNORE_MARK], ACT_IGNORE_MARK, 0);
  step("after A's ignore mark", ACT_NONE, 0);
  pthread_t killer;
  pthread_create(&killer, NULL, kill_a_soon, &a);
  target = file2; /* not silenced by A's ignore mark */
  step("A holds the reader's event, killed at 300 ms", ACT_HOLD, 0);
  pthread_join(killer, NULL);
  waitpid(a, NULL, 0);
  step("A gone", ACT_NONE, 0);
  kill(b, SIGKILL);
  waitpid(b, NULL, 0);
  return 0;
}
