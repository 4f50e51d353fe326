// One scan: a scanner program as a child of the calling process, with the content on its stdin.
//
// Overview (what this file owns, what it must not do):
// - The child is started with vfork and raw system calls only (dup2, setpgid, sigaction, execve): no allocation and
//   no atfork handlers run in the host, so a scan may start from inside read() wherever read() is called from.
// - The child gets an environment without LD_PRELOAD and with BLESSD_PRELOAD=off: scanners never load this library,
//   so they never gate (or recurse into) themselves; BLESSD_PATH (display only), BLESSD_SIZE, BLESSD_SCANNER as
//   for the daemon's exec actor.
// - stdin is one end of a socketpair, so writes use MSG_NOSIGNAL: a scanner that exits early must not raise
//   SIGPIPE in the host. The content is read through the host's own descriptor with pread (unlinked files too).
// - The child runs in its own process group; on timeout the whole group is killed, so a grandchild holding stdout
//   cannot keep us waiting. Exit is observed through a pidfd, so no polling and no sleeps.
// - Known limit: a host that reaps every child (SIGCHLD handler calling waitpid(-1), or SIGCHLD ignored) can take
//   the exit status first; the scan then ends as an error and the entry's onError answers.
#include "scan.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include "sys.h"

extern char **environ;

#define MAX_ENV 1024
#define CHUNK (64 * 1024)
#define EXIT_OK 0
#define EXIT_DENY 1
#define EXIT_ALLOW 10

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int high_fd(int fd) {
  if (fd >= 3) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  sys_close(fd);
  return moved;
}

/* The kernel's struct sigaction for rt_sigaction (glibc's differs in layout). */
struct ksigaction {
  void *handler;
  unsigned long flags;
  void *restorer;
  unsigned long mask;
};

static void child(const char *program, int in, int out, char *const argv[], char *const envp[]) {
  /* In the vfork child: raw syscalls only, no libc state touched. Handlers are the parent's code: reset them all
   * before signals are unblocked (they were blocked across vfork). */
  struct ksigaction dfl = {SIG_DFL, 0, 0, 0};
  for (int sig = 1; sig < 65; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
  syscall(SYS_dup2, in, 0);
  syscall(SYS_dup2, out, 1);
  syscall(SYS_setpgid, 0, 0);
  unsigned long none = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
  syscall(SYS_execve, program, argv, envp);
  syscall(SYS_exit_group, 127);
}

static int starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

scan_status_t scan_run(const entry_t *e, int fd, long long size, const char *display_path, answer_t *answer, char *reason, size_t rlen,
                       char *why, size_t wlen) {
  reason[0] = 0;
  char *envp[MAX_ENV + 5];
  int n = 0;
  for (char **v = environ; v && *v && n < MAX_ENV; v++)
    if (!starts_with(*v, "LD_PRELOAD=") && !starts_with(*v, "BLESSD_PRELOAD=") && !starts_with(*v, "BLESSD_PATH=") &&
        !starts_with(*v, "BLESSD_SIZE=") && !starts_with(*v, "BLESSD_SCANNER="))
      envp[n++] = *v;
  char env_path[4200], env_size[48], env_scanner[96];
  snprintf(env_path, sizeof env_path, "BLESSD_PATH=%s", display_path);
  snprintf(env_size, sizeof env_size, "BLESSD_SIZE=%lld", size);
  snprintf(env_scanner, sizeof env_scanner, "BLESSD_SCANNER=%s", e->name);
  envp[n++] = env_path, envp[n++] = env_size, envp[n++] = env_scanner, envp[n++] = (char *)"BLESSD_PRELOAD=off";
  envp[n] = NULL;
  char *argv[] = {(char *)e->program, NULL};

  int in[2], out[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in)) {
    snprintf(why, wlen, "socketpair: %s", strerror(errno));
    return SCAN_ERROR;
  }
  if (pipe2(out, O_CLOEXEC)) {
    snprintf(why, wlen, "pipe: %s", strerror(errno));
    sys_close(in[0]), sys_close(in[1]);
    return SCAN_ERROR;
  }
  /* dup2 onto 0 and 1 in the child must not clobber another of these four */
  in[0] = high_fd(in[0]), in[1] = high_fd(in[1]), out[0] = high_fd(out[0]), out[1] = high_fd(out[1]);
  void *buf = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (in[0] < 0 || in[1] < 0 || out[0] < 0 || out[1] < 0 || buf == MAP_FAILED) {
    snprintf(why, wlen, "no descriptors or memory for the scan");
    sys_close(in[0]), sys_close(in[1]), sys_close(out[0]), sys_close(out[1]);
    if (buf != MAP_FAILED) munmap(buf, CHUNK);
    return SCAN_ERROR;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = vfork();
  if (pid == 0) child(e->program, in[0], out[1], argv, envp);
  int spawn_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  sys_close(in[0]), sys_close(out[1]);
  if (pid < 0) {
    snprintf(why, wlen, "cannot start %s: %s", e->program, strerror(spawn_errno));
    sys_close(in[1]), sys_close(out[0]), munmap(buf, CHUNK);
    return SCAN_ERROR;
  }
  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  fcntl(out[0], F_SETFL, O_NONBLOCK);

  long long deadline = now_ms() + e->timeout_ms;
  off_t at = 0;
  size_t pending = 0, sent = 0; /* bytes in buf not yet written to the child */
  int feeding = 1, reading = 1, exited = 0, timed_out = 0, read_failed = 0;
  size_t got = 0;
  char line[512];
  while (!exited || reading) {
    if (feeding && pending == sent) {
      ssize_t r = sys_pread(fd, buf, CHUNK, at);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        if (r < 0) read_failed = errno;
        shutdown(in[1], SHUT_WR);
        feeding = 0;
      } else {
        at += r, pending = (size_t)r, sent = 0;
      }
    }
    struct pollfd p[3] = {{feeding ? in[1] : -1, POLLOUT, 0}, {reading ? out[0] : -1, POLLIN, 0}, {exited ? -1 : pidfd, POLLIN, 0}};
    long long left = deadline - now_ms();
    if (left <= 0) {
      timed_out = 1;
      break;
    }
    int pr = poll(p, 3, (int)(left > 60000 ? 60000 : left));
    if (pr < 0 && errno != EINTR) break;
    if (pr <= 0) continue;
    if (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
      ssize_t w = send(in[1], (char *)buf + sent, pending - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR) feeding = 0; /* the scanner stopped reading: it decided early */
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      char tmp[1024];
      ssize_t r = sys_read(out[0], tmp, sizeof tmp);
      if (r > 0) {
        size_t take = (size_t)r < sizeof line - 1 - got ? (size_t)r : sizeof line - 1 - got;
        memcpy(line + got, tmp, take);
        got += take;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        reading = 0;
      }
    }
    if (p[2].revents & POLLIN) exited = 1;
    if (pidfd < 0 && !reading) exited = 1; /* no pidfd (old kernel): stdout closing stands for the exit */
  }
  sys_close(in[1]), sys_close(out[0]), munmap(buf, CHUNK);
  if (pidfd >= 0) sys_close(pidfd);
  if (timed_out || !exited) kill(-pid, SIGKILL), kill(pid, SIGKILL);
  int status = 0;
  pid_t w;
  while ((w = waitpid(pid, &status, __WALL)) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    snprintf(why, wlen, "%s did not finish within %ld ms and was killed", e->program, e->timeout_ms);
    return SCAN_TIMEOUT;
  }
  if (w < 0) {
    snprintf(why, wlen, "%s: exit status lost (%s: the program reaps children itself)", e->program, strerror(errno));
    return SCAN_ERROR;
  }
  if (read_failed) {
    snprintf(why, wlen, "reading the file for %s failed: %s", e->program, strerror(read_failed));
    return SCAN_ERROR;
  }
  if (WIFSIGNALED(status)) {
    snprintf(why, wlen, "%s was killed by signal %d", e->program, WTERMSIG(status));
    return SCAN_ERROR;
  }
  int code = WEXITSTATUS(status);
  if (code == EXIT_OK) {
    *answer = ANSWER_OK;
  } else if (code == EXIT_ALLOW) {
    *answer = ANSWER_ALLOW;
  } else if (code == EXIT_DENY) {
    *answer = ANSWER_DENY;
    line[got] = 0;
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    char *s = line;
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r')) s[--l] = 0;
    if (l > 200) s[200] = 0;
    snprintf(reason, rlen, "%s", l ? s : "exit 1");
  } else {
    snprintf(why, wlen, "%s exited with code %d (0 = ok, 1 = deny, 10 = allow)", e->program, code);
    return SCAN_ERROR;
  }
  return SCAN_ANSWER;
}
