// The gate: one verdict per open file, from tags or scans, walked through the stack as the daemon walks it.
//
// Overview (what this file owns, what it must not do):
// - The descriptor table: one 32-bit word per fd (UNKNOWN, PASS, DENY, or CHECKING with the checking thread's id).
//   Later reads of a decided fd cost one atomic load. A thread that finds another checking the same fd waits on a
//   futex; the checking thread itself (a signal handler reading the fd it is checking) gets EAGAIN, never a
//   deadlock.
// - The decision: tags first (user.scanned-by.<scanner>, judged as the daemon judges them); scans only for what
//   the tags do not settle, in stack order, stopping as soon as no further answer can change the verdict; tags
//   written back conditionally (XATTR_CREATE where none was, XATTR_REPLACE where a stale one was, after checking
//   the stamp again), so a result never overwrites a newer one or lands on changed content.
// - It must not allocate (everything is static or on the stack), must not use the wrapped entry points for its
//   own I/O (sys.h), and must leave errno as it found it.
// - Scope: tags are honoured on any file; scans run only for files under the configured paths (or $HOME), and
//   never where a running daemon guards the filesystem (guards.c): there the daemon has already decided.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "gate.h"
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include "config.h"
#include "guards.h"
#include "scan.h"
#include "sys.h"
#include "tags.h"

extern char *program_invocation_short_name;

#define MAX_FDS 65536
enum { SLOT_UNKNOWN = 0, SLOT_PASS = 1, SLOT_DENY = 2, SLOT_CHECKING = 3 };
#define SLOT_WAITERS 0x80000000u /* with CHECKING: someone sleeps on the futex, so the owner must wake it */
static _Atomic uint32_t slots[MAX_FDS];

enum { OFF = 0, ON = 1, BROKEN = 2 };
static int mode = OFF;
static config_t cfg;
static char default_scope[PATH_MAX];
static char key_path[PATH_MAX];
static char broken_why[1024];

/* Loaded lazily (first scan or tag), once; a caller that finds a load in progress goes on without. */
static _Atomic int key_state; /* 0 unloaded, 1 loading, 2 ready, 3 unusable */
static uint8_t key[TAG_KEY_BYTES];
static _Atomic int gen_state[MAX_ENTRIES];
static char generation[MAX_ENTRIES][320];
static _Atomic unsigned warned; /* one stderr line per entry (bit i) and for the key (bit 31) */

static __thread pid_t my_tid;
static pid_t tid(void) {
  if (!my_tid) my_tid = (pid_t)syscall(SYS_gettid);
  return my_tid;
}

static void say(const char *fmt, const char *a, const char *b, const char *c) {
  char line[2048];
  int n = snprintf(line, sizeof line, fmt, a, b, c);
  if (n > (int)sizeof line - 2) n = (int)sizeof line - 2;
  line[n] = '\n';
  int saved = errno;
  sys_write(2, line, (size_t)n + 1);
  errno = saved;
}

static void say_once(unsigned bit, const char *fmt, const char *a, const char *b, const char *c) {
  if (atomic_fetch_or(&warned, 1u << bit) & (1u << bit)) return;
  say(fmt, a, b, c);
}

// ---- setup ----------------------------------------------------------------------------------------------------

static const char *env_or(const char *name, const char *fallback) {
  const char *v = getenv(name);
  return v && v[0] ? v : fallback;
}

static bool never_gated(void) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n < 0 ? 0 : n] = 0;
  const char *base = strrchr(exe, '/');
  base = base ? base + 1 : exe;
  for (int i = 0; i < cfg.nnever; i++) {
    const char *p = cfg.never[i];
    if (p[0] == '/' ? !strcmp(p, exe) : (!strcmp(p, base) || (program_invocation_short_name && !strcmp(p, program_invocation_short_name)))) return true;
  }
  return false;
}

void gate_init(void) {
  int saved = errno;
  const char *off = getenv("BLESSD_PRELOAD");
  if (off && !strcmp(off, "off")) return;
  const char *home = env_or("HOME", "");
  char path[PATH_MAX], dir[PATH_MAX];
  const char *explicit_config = env_or("BLESSD_PRELOAD_CONFIG", NULL);
  if (explicit_config) snprintf(path, sizeof path, "%s", explicit_config);
  else {
    snprintf(dir, sizeof dir, "%s/.config", home);
    snprintf(path, sizeof path, "%s/blessd/preload.yaml", env_or("XDG_CONFIG_HOME", dir));
  }
  snprintf(dir, sizeof dir, "%s/.local/state", home);
  snprintf(key_path, sizeof key_path, "%s/blessd/key", env_or("XDG_STATE_HOME", dir));
  snprintf(default_scope, sizeof default_scope, "%s", home);
  guards_init(env_or("BLESSD_GUARDS_FILE", GUARDS_FILE_DEFAULT));
  char err[1200];
  int rc = config_parse(path, &cfg, err, sizeof err);
  if (rc == 1) {
    errno = saved;
    return; /* no config: nothing to gate */
  }
  if (rc == 0 && never_gated()) {
    errno = saved;
    return;
  }
  char warn[1200];
  if (rc == 0 && config_finish(&cfg, warn, sizeof warn) != 0) {
    snprintf(err, sizeof err, "%s", warn);
    rc = -1;
  } else if (rc == 0 && warn[0]) {
    say("blessd-preload: %s%s%s", warn, "", "");
  }
  if (rc != 0) {
    /* Fail closed: without a stack nothing can vouch for content. BLESSD_PRELOAD=off lets the user fix the file. */
    snprintf(broken_why, sizeof broken_why, "%s", err);
    cfg.npaths = 0; /* half a parse is no policy: the default scope, all of it refused */
    say("blessd-preload: %s; files under %s are refused until it is fixed (BLESSD_PRELOAD=off to edit it)", err,
        default_scope[0] ? default_scope : "/", "");
    mode = BROKEN;
    errno = saved;
    return;
  }
  mode = ON;
  errno = saved;
}

bool gate_active(void) { return mode != OFF; }

// ---- the descriptor table -------------------------------------------------------------------------------------

void gate_forget(int fd) {
  if (fd >= 0 && fd < MAX_FDS) atomic_store_explicit(&slots[fd], SLOT_UNKNOWN, memory_order_relaxed);
}

void gate_forget_range(unsigned first, unsigned last) {
  for (unsigned fd = first; fd <= last && fd < MAX_FDS; fd++) atomic_store_explicit(&slots[fd], SLOT_UNKNOWN, memory_order_relaxed);
}

// ---- caches ---------------------------------------------------------------------------------------------------

/* Verdicts of files this process decided but could not tag (not its own, or no xattr support), by stamp. */
#define VERDICTS 64
typedef struct {
  stamp_t stamp;
  int verdict; /* SLOT_PASS / SLOT_DENY, 0 = empty */
} remembered_t;
static remembered_t remembered[VERDICTS];
static unsigned remembered_next;
static atomic_flag remembered_lock = ATOMIC_FLAG_INIT;

static int recall(const stamp_t *s) {
  if (atomic_flag_test_and_set_explicit(&remembered_lock, memory_order_acquire)) return 0; /* busy: no waiting */
  int v = 0;
  for (int i = 0; i < VERDICTS && !v; i++)
    if (remembered[i].verdict && remembered[i].stamp.dev == s->dev && stamp_same(&remembered[i].stamp, s)) v = remembered[i].verdict;
  atomic_flag_clear_explicit(&remembered_lock, memory_order_release);
  return v;
}

static void remember(const stamp_t *s, int verdict) {
  if (atomic_flag_test_and_set_explicit(&remembered_lock, memory_order_acquire)) return;
  remembered[remembered_next++ % VERDICTS] = (remembered_t){*s, verdict};
  atomic_flag_clear_explicit(&remembered_lock, memory_order_release);
}

/* Inodes this process has judged, keyed by (dev, ino, ctime, size, mtime). ctime moves on every xattr change and
 * every content change, so while it stands the inode's tags are the ones we judged and its inode generation is the
 * one we read: a later access of the same file in this process costs one fstat, not an ioctl and a getxattr.
 * (A recycled inode number comes with a later ctime: it never matches an entry of the inode before it.) */
#define SEEN 256
typedef struct {
  uint64_t dev, ino;
  int64_t ctime_ns, size, mtime_ns;
  uint32_t igen;
  int verdict; /* SLOT_PASS / SLOT_DENY when the tags alone settled it, else 0 */
  int used;
} seen_t;
static seen_t seen_table[SEEN];
static atomic_flag seen_lock = ATOMIC_FLAG_INIT;

static unsigned seen_slot(const stamp_t *s) { return (unsigned)((s->ino * 0x9E3779B97F4A7C15ULL ^ s->dev) >> 40) % SEEN; }

static bool seen_get(const stamp_t *s, uint32_t *igen, int *verdict) {
  if (atomic_flag_test_and_set_explicit(&seen_lock, memory_order_acquire)) return false;
  const seen_t *e = &seen_table[seen_slot(s)];
  bool hit = e->used && e->dev == s->dev && e->ino == s->ino && e->ctime_ns == s->ctime_ns && e->size == s->size && e->mtime_ns == s->mtime_ns;
  if (hit) *igen = e->igen, *verdict = e->verdict;
  atomic_flag_clear_explicit(&seen_lock, memory_order_release);
  return hit;
}

static void seen_put(const stamp_t *s, int verdict) {
  if (atomic_flag_test_and_set_explicit(&seen_lock, memory_order_acquire)) return;
  seen_table[seen_slot(s)] = (seen_t){s->dev, s->ino, s->ctime_ns, s->size, s->mtime_ns, s->igen, verdict, 1};
  atomic_flag_clear_explicit(&seen_lock, memory_order_release);
}

/* Tag values whose MAC this process has verified: the same bytes under the same key need no second HMAC. This is
 * what keeps a tagged file's open+read close to the cost of the system calls. */
#define VERIFIED 16
typedef struct {
  int entry;
  int len;
  char value[512];
} verified_t;
static verified_t verified[VERIFIED];
static unsigned verified_next;
static atomic_flag verified_lock = ATOMIC_FLAG_INIT;

static bool mac_seen(int entry, const char *value, int len) {
  if (len > (int)sizeof verified[0].value) return false;
  if (atomic_flag_test_and_set_explicit(&verified_lock, memory_order_acquire)) return false;
  bool seen = false;
  for (int i = 0; i < VERIFIED && !seen; i++) seen = verified[i].len == len && verified[i].entry == entry && !memcmp(verified[i].value, value, (size_t)len);
  atomic_flag_clear_explicit(&verified_lock, memory_order_release);
  return seen;
}

static void mac_good(int entry, const char *value, int len) {
  if (len > (int)sizeof verified[0].value) return;
  if (atomic_flag_test_and_set_explicit(&verified_lock, memory_order_acquire)) return;
  verified_t *v = &verified[verified_next++ % VERIFIED];
  v->entry = entry, v->len = len;
  memcpy(v->value, value, (size_t)len);
  atomic_flag_clear_explicit(&verified_lock, memory_order_release);
}

static bool have_key(void) {
  int s = atomic_load(&key_state);
  if (s == 2) return true;
  if (s != 0) return false;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&key_state, &expect, 1)) return atomic_load(&key_state) == 2;
  char msg[1200];
  if (key_load(key_path, key, msg, sizeof msg) == 0) {
    atomic_store(&key_state, 2);
    return true;
  }
  say_once(31, "blessd-preload: %s; no tags are read or written (every file is scanned)", msg, "", "");
  atomic_store(&key_state, 3);
  return false;
}

static const char *generation_of(int i) {
  int s = atomic_load(&gen_state[i]);
  if (s == 2) return generation[i];
  if (s != 0) return NULL;
  int expect = 0;
  if (!atomic_compare_exchange_strong(&gen_state[i], &expect, 1)) return atomic_load(&gen_state[i]) == 2 ? generation[i] : NULL;
  if (program_generation(cfg.entries[i].program, 0, generation[i], sizeof generation[i]) == 0) {
    atomic_store(&gen_state[i], 2);
    return generation[i];
  }
  atomic_store(&gen_state[i], 0); /* not readable now: try again next time, meanwhile no tags for it */
  return NULL;
}

// ---- the decision ---------------------------------------------------------------------------------------------

/* The verdicts still reachable, as a bit set over final walk states, given the answers so far (NONE = unknown). */
static int reachable(const answer_t *answers) {
  unsigned states = 1u << 0;
  for (int i = 0; i < cfg.nentries; i++) {
    const entry_t *e = &cfg.entries[i];
    unsigned next = 0;
    for (int s = 0; s < 6; s++) {
      if (!(states & (1u << s))) continue;
      if (answers[i] != ANSWER_NONE) next |= 1u << stack_step(s, e->control, answers[i]);
      else
        for (answer_t a = ANSWER_DENY; a <= ANSWER_ALLOW; a++) next |= 1u << stack_step(s, e->control, a);
    }
    states = next;
  }
  int verdicts = 0;
  for (int s = 0; s < 6; s++)
    if (states & (1u << s)) verdicts |= stack_finish(s) == ANSWER_ALLOW ? 1 : 2;
  return verdicts; /* 1 allow only, 2 deny only, 3 undecided */
}

static bool in_scope(const char *path) {
  if (!path[0]) return true; /* unknown: gate it */
  int n = cfg.npaths;
  for (int i = 0; i < (n ? n : 1); i++) {
    const char *dir = n ? cfg.paths[i] : default_scope;
    size_t l = strlen(dir);
    while (l > 1 && dir[l - 1] == '/') l--;
    if (l == 0) continue;
    if (!strncmp(path, dir, l) && (path[l] == '/' || path[l] == 0 || l == 1)) return true;
  }
  return false;
}

static void path_of(int fd, char *out, size_t cap) {
  char proc[64];
  snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
  ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, proc, out, cap - 1);
  out[n < 0 ? 0 : n] = 0;
  if (n > 10 && !strcmp(out + n - 10, " (deleted)")) out[n - 10] = 0;
  if (out[0] != '/') out[0] = 0; /* pipe:[..], anon_inode:..: not a path */
}

static bool ask_terminal(const char *scanner, const char *path) {
  int tty = sys_open("/dev/tty", O_RDWR | O_NOCTTY, 0);
  if (tty < 0) return false;
  char q[4400];
  int n = snprintf(q, sizeof q, "blessd: no verdict from %s for %s — open anyway? [y/N] ", scanner, path);
  sys_write(tty, q, (size_t)(n < (int)sizeof q ? n : (int)sizeof q - 1));
  char reply[16] = {0};
  ssize_t r = sys_read(tty, reply, sizeof reply - 1);
  sys_close(tty);
  return r > 0 && (reply[0] == 'y' || reply[0] == 'Y');
}

/* One entry's answer from a scan, with onError/onTimeout (and ask) applied. *tag_it: a real result, worth a tag. */
static answer_t scan_entry(int i, int fd, const stamp_t *s, const char *path, char *reason, size_t rlen, bool *tag_it) {
  const entry_t *e = &cfg.entries[i];
  *tag_it = false;
  if (s->size > e->max_size) {
    snprintf(reason, rlen, "larger than maxSize");
    return e->on_too_large;
  }
  char why[1200];
  for (int attempt = 0; attempt < 2; attempt++) {
    answer_t a = ANSWER_NONE;
    scan_status_t st = scan_run(e, fd, s->size, path[0] ? path : "(unknown)", &a, reason, rlen, why, sizeof why);
    if (st == SCAN_ANSWER) {
      *tag_it = true;
      return a;
    }
    on_failure_t f = st == SCAN_TIMEOUT ? e->on_timeout : e->on_error;
    if (f == FAIL_RETRY && attempt == 0) continue;
    if (e->ask && ask_terminal(e->name, path[0] ? path : "(unknown)")) return ANSWER_OK;
    const char *what = f == FAIL_OK ? "ok" : "deny";
    say_once((unsigned)i, "blessd-preload: %s: %s; answered per the entry's onError/onTimeout: %s", e->name, why, what);
    snprintf(reason, rlen, "%s failed: %s", e->name, st == SCAN_TIMEOUT ? "timeout" : "error");
    return f == FAIL_OK ? ANSWER_OK : ANSWER_DENY;
  }
  return ANSWER_DENY;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_tag(int i, int fd, const stamp_t *scanned, answer_t a, const char *reason, bool existed, bool *stored) {
  const char *gen = generation_of(i);
  if (!gen || !have_key()) return;
  stamp_t now;
  bool regular;
  if (stamp_read(fd, &now, &regular) || !stamp_same(&now, scanned)) return; /* changed during the scan: no verdict on it */
  char name[128], value[TAG_MAX_VALUE];
  snprintf(name, sizeof name, TAG_PREFIX "%s", cfg.entries[i].name);
  int len = tag_encode(key, cfg.entries[i].name, a, gen, scanned, wall_ms(), reason, value, sizeof value);
  if (len < 0) return;
  /* CREATE where no tag was (another writer's newer result wins: EEXIST), REPLACE where ours was stale (a daemon's
   * dirty transition that removed it meanwhile wins: ENODATA). */
  if (fsetxattr(fd, name, value, (size_t)len, existed ? XATTR_REPLACE : XATTR_CREATE) == 0) *stored = true;
}

static int decide(int fd) {
  stamp_t s;
  bool regular;
  if (stamp_stat(fd, &s, &regular) != 0 || !regular) return SLOT_PASS; /* not a file's content (pipe, socket, dir, tty) */
  int settled = 0;
  if (seen_get(&s, &s.igen, &settled)) {
    if (settled) return settled;
  } else {
    stamp_igen(fd, &s);
  }
  char path[PATH_MAX];
  path[0] = 0;
  if (mode == BROKEN) {
    path_of(fd, path, sizeof path);
    return default_scope[0] && !in_scope(path) ? SLOT_PASS : SLOT_DENY;
  }
  answer_t answers[MAX_ENTRIES];
  bool existed[MAX_ENTRIES];
  int missing = 0;
  bool keyed = false;
  for (int i = 0; i < cfg.nentries; i++) {
    const entry_t *e = &cfg.entries[i];
    answers[i] = ANSWER_NONE;
    existed[i] = false;
    if (e->is_default) answers[i] = e->default_answer;
    else if (e->control == CTL_OBSERVE) answers[i] = ANSWER_OK; /* observers never gate; the library runs none */
    if (answers[i] != ANSWER_NONE) continue;
    char name[128], value[TAG_MAX_VALUE];
    snprintf(name, sizeof name, TAG_PREFIX "%s", e->name);
    ssize_t len = fgetxattr(fd, name, value, sizeof value);
    if (len >= 0) {
      existed[i] = true;
      const char *gen = generation_of(i);
      if (gen && (keyed || (keyed = have_key()))) {
        bool seen = mac_seen(i, value, (int)len);
        answer_t a;
        tag_state_t t = tag_judge(key, e->name, value, (size_t)len, &s, gen, seen, &a);
        if (t == TAG_VALID) {
          if (!seen) mac_good(i, value, (int)len);
          answers[i] = a;
          continue;
        }
      }
    }
    missing++;
  }
  int verdicts = reachable(answers);
  if (verdicts != 3) {
    int v = verdicts == 1 ? SLOT_PASS : SLOT_DENY;
    seen_put(&s, v);
    return v;
  }
  seen_put(&s, 0); /* the inode generation, at least */
  if (guards_cover(s.dev, NULL)) return SLOT_PASS; /* a running daemon guards this filesystem: it has decided */
  int known = recall(&s);
  if (known) return known;
  path_of(fd, path, sizeof path);
  if (!in_scope(path)) return SLOT_PASS;
  if (guards_cover(s.dev, path)) return SLOT_PASS;
  bool all_stored = true;
  const char *denied_by = NULL;
  char deny_reason[600] = "";
  for (int i = 0; i < cfg.nentries && verdicts == 3; i++) {
    if (answers[i] != ANSWER_NONE) continue;
    char reason[600];
    bool tag_it, stored = false;
    answers[i] = scan_entry(i, fd, &s, path, reason, sizeof reason, &tag_it);
    if (tag_it) write_tag(i, fd, &s, answers[i], answers[i] == ANSWER_DENY ? reason : NULL, existed[i], &stored);
    all_stored = all_stored && stored;
    if (answers[i] == ANSWER_DENY && !denied_by) denied_by = cfg.entries[i].name, snprintf(deny_reason, sizeof deny_reason, "%s", reason);
    verdicts = reachable(answers);
  }
  (void)missing;
  int verdict = verdicts == 1 ? SLOT_PASS : SLOT_DENY;
  if (!all_stored) remember(&s, verdict);
  else {
    /* Our tags moved ctime: key the verdict on the inode as it is now, if its content is still what was scanned. */
    stamp_t after;
    bool reg;
    if (stamp_stat(fd, &after, &reg) == 0 && after.size == s.size && after.mtime_ns == s.mtime_ns) after.igen = s.igen, seen_put(&after, verdict);
  }
  if (verdict == SLOT_DENY) say("blessd-preload: %s: denied (%s: %s)", path[0] ? path : "(file)", denied_by ? denied_by : "stack", deny_reason[0] ? deny_reason : "nobody vouched");
  return verdict;
}

static void wake(_Atomic uint32_t *w) { syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0); }

int gate_fd(int fd) {
  if (mode == OFF || fd < 0) return 0;
  int saved = errno;
  int verdict;
  if (fd >= MAX_FDS) {
    verdict = decide(fd);
  } else {
    _Atomic uint32_t *w = &slots[fd];
    for (;;) {
      uint32_t v = atomic_load_explicit(w, memory_order_acquire);
      if (v == SLOT_PASS || v == SLOT_DENY) {
        verdict = (int)v;
        break;
      }
      uint32_t mine = SLOT_CHECKING | (((uint32_t)tid() << 2) & ~SLOT_WAITERS);
      if ((v & 3) == SLOT_CHECKING) {
        if ((v & ~SLOT_WAITERS) == mine) {
          errno = saved;
          return EAGAIN; /* re-entered from a signal handler while this thread checks the same fd */
        }
        if (!(v & SLOT_WAITERS) && !atomic_compare_exchange_strong(w, &v, v | SLOT_WAITERS)) continue;
        struct timespec ts = {1, 0};
        syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v | SLOT_WAITERS, &ts, NULL, 0);
        continue;
      }
      if (!atomic_compare_exchange_strong(w, &v, mine)) continue;
      verdict = decide(fd);
      /* Only if the slot is still ours: a close() meanwhile reset it, and the next owner of the number decides anew. */
      uint32_t expect = mine;
      if (!atomic_compare_exchange_strong(w, &expect, (uint32_t)verdict)) {
        /* Someone sleeps on our check (or the number was reused meanwhile): settle it if still ours, wake them. */
        if (expect == (mine | SLOT_WAITERS)) atomic_compare_exchange_strong(w, &expect, (uint32_t)verdict);
        wake(w);
      }
      break;
    }
  }
  errno = saved;
  return verdict == SLOT_DENY ? EPERM : 0;
}

/* The hot check the wrappers make before anything else. */
int gate_path(const char *path) {
  if (mode == OFF || !path) return 0;
  int saved = errno;
  int fd = sys_open(path, O_RDONLY | O_NONBLOCK, 0);
  if (fd < 0) {
    errno = saved;
    return 0; /* unreadable to us: execute-only, or missing (execve reports that itself) */
  }
  int verdict = decide(fd);
  sys_close(fd);
  errno = saved;
  return verdict == SLOT_DENY ? EPERM : 0;
}

int gate_fast_pass(int fd);
int gate_fast_pass(int fd) {
  return mode == OFF || fd < 0 || (fd < MAX_FDS && atomic_load_explicit(&slots[fd], memory_order_acquire) == SLOT_PASS);
}
