// Reading the daemon's published guards. Format (one guard a line, written atomically by the daemon):
//   blessd-guards v1 pid=<pid>
//   dev=<st_dev> kind=<tree|mount|filesystem> path=<percent-encoded path>
// A file left behind by a daemon that died (its pid gone) guards nothing.
#include "guards.h"
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sys.h"

#define MAX_GUARDS 32

typedef struct {
  uint64_t dev;
  int tree;
  char path[1024];
} guard_t;

static char file[4096];
static guard_t guards[MAX_GUARDS];
static int nguards;
static long daemon_pid;
static long long loaded_at = -1000000;
static atomic_flag busy = ATOMIC_FLAG_INIT;

void guards_init(const char *f) { snprintf(file, sizeof file, "%s", f); }

static long long coarse_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO: no system call on the hot path */
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void unpct(char *s) {
  char *o = s;
  for (char *p = s; *p; p++) {
    if (*p == '%' && p[1] && p[2]) {
      char hx[3] = {p[1], p[2], 0};
      *o++ = (char)strtol(hx, NULL, 16);
      p += 2;
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
}

static void reload(void) {
  static char text[16384];
  nguards = 0;
  daemon_pid = 0;
  int saved = errno;
  long len = sys_read_file(file, text, sizeof text);
  errno = saved;
  if (len <= 0) return;
  char *save = NULL;
  char *line = strtok_r(text, "\n", &save);
  if (!line || sscanf(line, "blessd-guards v1 pid=%ld", &daemon_pid) != 1) return;
  if (kill((pid_t)daemon_pid, 0) != 0 && errno == ESRCH) {
    errno = saved;
    return;
  }
  errno = saved;
  while ((line = strtok_r(NULL, "\n", &save)) && nguards < MAX_GUARDS) {
    guard_t *g = &guards[nguards];
    unsigned long long dev;
    char kind[16];
    int off = 0;
    if (sscanf(line, "dev=%llu kind=%15s path=%n", &dev, kind, &off) != 2 || off == 0) continue;
    g->dev = dev;
    g->tree = !strcmp(kind, "tree");
    snprintf(g->path, sizeof g->path, "%s", line + off);
    unpct(g->path);
    nguards++;
  }
}

bool guards_cover(uint64_t dev, const char *path) {
  if (!file[0]) return false;
  /* One reader at a time; a thread (or a signal handler) that finds the table busy does not wait: it gates the
   * file itself, which is only ever a second scan, never a missed one. */
  if (atomic_flag_test_and_set_explicit(&busy, memory_order_acquire)) return false;
  long long now = coarse_ms();
  if (now - loaded_at >= 1000) {
    reload();
    loaded_at = now;
  }
  bool covered = false;
  for (int i = 0; i < nguards && !covered; i++) {
    if (guards[i].dev != dev) continue;
    if (!guards[i].tree) covered = true;
    else if (path) {
      size_t l = strlen(guards[i].path);
      covered = !strncmp(path, guards[i].path, l) && (path[l] == '/' || path[l] == 0);
    }
  }
  atomic_flag_clear_explicit(&busy, memory_order_release);
  return covered;
}
