// preload.yaml: a small, strict subset of YAML, parsed by hand into static storage.
//
// Why hand-written: the parser runs inside every program the library is loaded into, on the first gated access,
// possibly in a thread the host did not expect us to use. A general YAML library would allocate, carry far more
// grammar than five keys need, and add a shared-library dependency to every host. The subset (below) is the one the
// daemon's config.yaml uses for these keys, so a file written for one reads the same in the other; anything outside
// it is an error naming file:line:col and the key — never a guess.
//
//   # comment                     comments: a whole line, or after a space
//   mustPass: /abs/dir            scalars: plain, or "double-quoted" (escapes \" and \\ only)
//   timeoutMs: 30000
//   paths: [/home/me, /tmp]       lists: flow [a, b] or block ("  - a" lines)
//   neverGated:
//     - wc
//   stack:                        stack: a block list of mappings, keys indented under the "- "
//     - name: clam
//       program: /usr/local/bin/clam-wrapper
//       control: required         required | requisite | sufficient | optional | observe | ask
//       onError: deny             deny | ok | retry     (also onTimeout)
//       timeoutMs: 5000
//       maxSize: 1048576          bytes; larger files get onTooLarge (deny | ok | allow)
//     - default: allow            the daemon's `default` actor: answers without a scan
// No tabs, anchors, multi-line scalars or nested mappings beyond the stack's.
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "sys.h"

#define MAX_FILE (64 * 1024)

typedef struct {
  const char *file;
  int line;
  char *err;
  size_t errlen;
} where_t;

static int fail(where_t *w, int col, const char *key, const char *problem) {
  snprintf(w->err, w->errlen, "%s:%d:%d: %s: %s", w->file, w->line, col, key, problem);
  return -1;
}

static const char *skip_spaces(const char *p) {
  while (*p == ' ') p++;
  return p;
}

/* A scalar at p (until end of line, a comment, or one of `stops`), into out. Returns the position after it. */
static const char *scalar(where_t *w, const char *line, const char *p, const char *stops, const char *key, char *out, size_t cap, int *bad) {
  size_t n = 0;
  *bad = 0;
  p = skip_spaces(p);
  if (*p == '"') {
    p++;
    while (*p && *p != '"') {
      char ch = *p;
      if (ch == '\\') {
        p++;
        if (*p != '"' && *p != '\\') {
          *bad = fail(w, (int)(p - line) + 1, key, "only \\\" and \\\\ escapes are supported");
          return p;
        }
        ch = *p;
      }
      if (n + 1 >= cap) {
        *bad = fail(w, (int)(p - line) + 1, key, "value too long");
        return p;
      }
      out[n++] = ch;
      p++;
    }
    if (*p != '"') {
      *bad = fail(w, (int)(p - line) + 1, key, "unterminated quoted string");
      return p;
    }
    p++;
  } else {
    if (*p == '\'' || *p == '&' || *p == '*' || *p == '{' || *p == '|' || *p == '>' || *p == '!') {
      *bad = fail(w, (int)(p - line) + 1, key, "this YAML feature is not supported here (use a plain or \"double-quoted\" value)");
      return p;
    }
    const char *start = p;
    while (*p && !strchr(stops, *p) && !(*p == '#' && p > start && p[-1] == ' ')) p++;
    const char *end = p;
    while (end > start && end[-1] == ' ') end--;
    if ((size_t)(end - start) + 1 > cap) {
      *bad = fail(w, (int)(start - line) + 1, key, "value too long");
      return p;
    }
    memcpy(out, start, (size_t)(end - start));
    n = (size_t)(end - start);
  }
  out[n] = 0;
  return p;
}

/* Nothing but spaces and a comment may follow a value. */
static int rest_is_empty(where_t *w, const char *line, const char *p, const char *key) {
  p = skip_spaces(p);
  if (*p && *p != '#') return fail(w, (int)(p - line) + 1, key, "unexpected text after the value");
  return 0;
}

static int parse_long(where_t *w, int col, const char *key, const char *v, long long max, long long *out) {
  if (!*v) return fail(w, col, key, "expected a positive integer");
  long long n = 0;
  for (const char *p = v; *p; p++) {
    if (*p < '0' || *p > '9') return fail(w, col, key, "expected a positive integer");
    n = n * 10 + (*p - '0');
    if (n > max) return fail(w, col, key, "number too large");
  }
  if (n <= 0) return fail(w, col, key, "expected a positive integer");
  *out = n;
  return 0;
}

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_CHARS) return 0;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9'))) return 0;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) return 0;
  return 1;
}

static void entry_defaults(entry_t *e, long timeout_ms) {
  memset(e, 0, sizeof *e);
  e->control = CTL_REQUIRED;
  e->on_error = FAIL_DENY;
  e->on_timeout = FAIL_DENY;
  e->on_too_large = ANSWER_DENY;
  e->timeout_ms = timeout_ms;
  e->max_size = DEFAULT_MAX_SIZE;
}

static int entry_key(where_t *w, entry_t *e, int kcol, int col, const char *key, const char *v) {
  char k[80];
  snprintf(k, sizeof k, "stack[].%s", key);
  if (!strcmp(key, "name")) {
    if (!valid_name(v)) return fail(w, col, k, "must match [a-z0-9][a-z0-9_-]{0,63} (it becomes the tag name)");
    snprintf(e->name, sizeof e->name, "%s", v);
  } else if (!strcmp(key, "program")) {
    if (v[0] != '/') return fail(w, col, k, "must be an absolute path to a program");
    snprintf(e->program, sizeof e->program, "%s", v);
  } else if (!strcmp(key, "default")) {
    if (!strcmp(v, "allow")) e->default_answer = ANSWER_ALLOW;
    else if (!strcmp(v, "deny")) e->default_answer = ANSWER_DENY;
    else if (!strcmp(v, "ok")) e->default_answer = ANSWER_OK;
    else return fail(w, col, k, "expected allow, ok or deny");
    e->is_default = true;
    if (!e->name[0]) snprintf(e->name, sizeof e->name, "default");
  } else if (!strcmp(key, "control")) {
    static const char *names[] = {"required", "requisite", "sufficient", "optional", "observe"};
    int found = 0;
    for (int i = 0; i < 5; i++)
      if (!strcmp(v, names[i])) e->control = (control_t)i, found = 1;
    if (!strcmp(v, "ask")) e->control = CTL_REQUIRED, e->ask = true, found = 1;
    if (!found) return fail(w, col, k, "expected required, requisite, sufficient, optional, observe or ask");
  } else if (!strcmp(key, "onError") || !strcmp(key, "onTimeout")) {
    on_failure_t f;
    if (!strcmp(v, "deny")) f = FAIL_DENY;
    else if (!strcmp(v, "ok")) f = FAIL_OK;
    else if (!strcmp(v, "retry")) f = FAIL_RETRY;
    else return fail(w, col, k, "expected deny, ok or retry");
    if (key[2] == 'E') e->on_error = f;
    else e->on_timeout = f;
  } else if (!strcmp(key, "onTooLarge")) {
    if (!strcmp(v, "allow")) e->on_too_large = ANSWER_ALLOW;
    else if (!strcmp(v, "deny")) e->on_too_large = ANSWER_DENY;
    else if (!strcmp(v, "ok")) e->on_too_large = ANSWER_OK;
    else return fail(w, col, k, "expected deny, ok or allow");
  } else if (!strcmp(key, "timeoutMs")) {
    long long n;
    if (parse_long(w, col, k, v, 3600 * 1000, &n)) return -1;
    e->timeout_ms = (long)n;
  } else if (!strcmp(key, "maxSize")) {
    long long n;
    if (parse_long(w, col, k, v, 1LL << 50, &n)) return -1;
    e->max_size = n;
  } else {
    return fail(w, kcol, k, "unknown key (name, program, default, control, onError, onTimeout, onTooLarge, timeoutMs, maxSize)");
  }
  return 0;
}

static int check_entry(where_t *w, entry_t *e, int line) {
  int saved = w->line;
  w->line = line;
  int rc = 0;
  if (e->is_default && e->program[0]) rc = fail(w, 5, "stack[]", "an entry has either program or default, not both");
  else if (!e->is_default && !e->program[0]) rc = fail(w, 5, "stack[]", "an entry needs program (an exec scanner) or default (allow/ok/deny)");
  else if (!e->name[0]) rc = fail(w, 5, "stack[].name", "missing (it becomes the tag name)");
  w->line = saved;
  return rc;
}

static int add_list_item(where_t *w, int col, const char *key, const char *v, char list[][PATH_MAX], int *n) {
  if (*n >= MAX_LIST) return fail(w, col, key, "too many items (at most 32)");
  if (!v[0]) return fail(w, col, key, "empty item");
  if (!strcmp(key, "paths") && v[0] != '/') return fail(w, col, key, "must be absolute directories");
  snprintf(list[(*n)++], PATH_MAX, "%s", v);
  return 0;
}

static int flow_list(where_t *w, const char *line, const char *p, const char *key, char list[][PATH_MAX], int *n) {
  p++; /* '[' */
  char item[PATH_MAX];
  int bad;
  for (;;) {
    p = skip_spaces(p);
    if (*p == ']') return rest_is_empty(w, line, p + 1, key);
    int col = (int)(p - line) + 1;
    p = scalar(w, line, p, ",]", key, item, sizeof item, &bad);
    if (bad) return -1;
    if (add_list_item(w, col, key, item, list, n)) return -1;
    p = skip_spaces(p);
    if (*p == ',') p++;
    else if (*p != ']') return fail(w, (int)(p - line) + 1, key, "expected , or ] in a [flow, list]");
  }
}

int config_parse(const char *path, config_t *c, char *err, size_t errlen) {
  static char text[MAX_FILE];
  /* Not a memset of *c: it is some 400 KiB of lists and paths, and clearing it faulted in every page of it at the
   * start of every program (a sixth of a preloaded `cat`'s time in perf). Every field is written before it is read:
   * the lists and the stack through their counts, each entry by entry_defaults. */
  c->must_pass[0] = 0;
  c->npaths = c->nnever = c->nentries = 0;
  snprintf(c->file, sizeof c->file, "%s", path);
  c->timeout_ms = DEFAULT_TIMEOUT_MS;
  where_t w = {path, 0, err, errlen};
  long len = sys_read_file(path, text, sizeof text);
  if (len == -1) {
    if (errno == ENOENT) return 1;
    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    return -1;
  }
  if (len == -2) {
    snprintf(err, errlen, "%s: larger than %d bytes", path, MAX_FILE);
    return -1;
  }
  if (memchr(text, 0, (size_t)len)) {
    snprintf(err, errlen, "%s: binary content (a NUL byte)", path);
    return -1;
  }
  enum { TOP, IN_LIST, IN_STACK } mode = TOP;
  char list_key[32] = "";
  char (*list)[PATH_MAX] = NULL;
  int *list_n = NULL;
  int seen_mustpass = 0, seen_paths = 0, seen_never = 0, seen_timeout = 0, seen_stack = 0;
  entry_t *cur = NULL;
  int cur_line = 0;
  int stack_timeouts[MAX_ENTRIES] = {0};
  char *save = NULL;
  char *next = text;
  while (next) {
    char *line = next;
    char *nl = strchr(line, '\n');
    next = nl ? nl + 1 : NULL;
    if (nl) *nl = 0;
    w.line++;
    size_t ll = strlen(line);
    if (ll && line[ll - 1] == '\r') line[--ll] = 0;
    if (strchr(line, '\t')) return fail(&w, (int)(strchr(line, '\t') - line) + 1, mode == TOP ? "(line)" : list_key, "tab character (indent with spaces)");
    const char *p = skip_spaces(line);
    int indent = (int)(p - line);
    if (!*p || *p == '#') continue;
    if (indent == 0) {
      if (cur && check_entry(&w, cur, cur_line)) return -1;
      cur = NULL;
      mode = TOP;
      char key[32];
      const char *colon = strchr(p, ':');
      if (!colon || (size_t)(colon - p) >= sizeof key) return fail(&w, 1, "(line)", "expected key: value");
      memcpy(key, p, (size_t)(colon - p));
      key[colon - p] = 0;
      const char *v = skip_spaces(colon + 1);
      int col = (int)(v - line) + 1;
      char val[PATH_MAX];
      int bad;
      int empty = !*v || *v == '#';
      if (!strcmp(key, "mustPass")) {
        if (seen_mustpass++) return fail(&w, 1, key, "given twice");
        const char *e = scalar(&w, line, v, "", key, val, sizeof val, &bad);
        if (bad || rest_is_empty(&w, line, e, key)) return -1;
        if (val[0] != '/') return fail(&w, col, key, "must be an absolute directory");
        snprintf(c->must_pass, sizeof c->must_pass, "%s", val);
      } else if (!strcmp(key, "timeoutMs")) {
        if (seen_timeout++) return fail(&w, 1, key, "given twice");
        const char *e = scalar(&w, line, v, "", key, val, sizeof val, &bad);
        long long n;
        if (bad || rest_is_empty(&w, line, e, key) || parse_long(&w, col, key, val, 3600 * 1000, &n)) return -1;
        c->timeout_ms = (long)n;
      } else if (!strcmp(key, "paths") || !strcmp(key, "neverGated")) {
        int paths = key[0] == 'p';
        int *seen = paths ? &seen_paths : &seen_never;
        if ((*seen)++) return fail(&w, 1, key, "given twice");
        list = paths ? c->paths : c->never;
        list_n = paths ? &c->npaths : &c->nnever;
        snprintf(list_key, sizeof list_key, "%s", key);
        if (*v == '[') {
          if (flow_list(&w, line, v, key, list, list_n)) return -1;
        } else if (empty) {
          mode = IN_LIST;
        } else {
          return fail(&w, col, key, "expected a list: [a, b] or \"- item\" lines below");
        }
      } else if (!strcmp(key, "stack")) {
        if (seen_stack++) return fail(&w, 1, key, "given twice");
        if (!empty) return fail(&w, col, key, "expected \"- \" entries on the lines below");
        mode = IN_STACK;
        snprintf(list_key, sizeof list_key, "stack");
      } else {
        return fail(&w, 1, key, "unknown key (mustPass, paths, neverGated, timeoutMs, stack)");
      }
      continue;
    }
    if (mode == TOP) return fail(&w, indent + 1, "(line)", "indented line outside a list");
    if (mode == IN_LIST) {
      if (p[0] != '-' || p[1] != ' ') return fail(&w, indent + 1, list_key, "expected \"- item\"");
      char val[PATH_MAX];
      int bad;
      int col = (int)(skip_spaces(p + 2) - line) + 1;
      const char *e = scalar(&w, line, p + 2, "", list_key, val, sizeof val, &bad);
      if (bad || rest_is_empty(&w, line, e, list_key) || add_list_item(&w, col, list_key, val, list, list_n)) return -1;
      continue;
    }
    /* IN_STACK: "- key: value" starts an entry, deeper "key: value" lines continue it */
    int starts = p[0] == '-' && p[1] == ' ';
    if (starts) {
      if (cur && check_entry(&w, cur, cur_line)) return -1;
      if (c->nentries >= MAX_ENTRIES) return fail(&w, indent + 1, "stack", "too many entries (at most 16)");
      cur = &c->entries[c->nentries++];
      entry_defaults(cur, 0);
      cur_line = w.line;
      snprintf(cur->origin, sizeof cur->origin, "%s:%d", path, w.line);
      p = skip_spaces(p + 2);
    } else if (!cur) {
      return fail(&w, indent + 1, "stack", "expected \"- \" to start an entry");
    }
    char key[32], val[PATH_MAX];
    const char *colon = strchr(p, ':');
    if (!colon || (size_t)(colon - p) >= sizeof key) return fail(&w, (int)(p - line) + 1, "stack[]", "expected key: value");
    memcpy(key, p, (size_t)(colon - p));
    key[colon - p] = 0;
    int bad;
    const char *v = skip_spaces(colon + 1);
    int col = (int)(v - line) + 1;
    const char *e = scalar(&w, line, v, "", key, val, sizeof val, &bad);
    if (bad || rest_is_empty(&w, line, e, key)) return -1;
    if (!strcmp(key, "timeoutMs")) stack_timeouts[cur - c->entries] = 1;
    if (entry_key(&w, cur, (int)(p - line) + 1, col, key, val)) return -1;
    for (entry_t *o = c->entries; o < cur; o++)
      if (!strcmp(o->name, cur->name) && !strcmp(key, "name")) return fail(&w, col, "stack[].name", "used twice (names must be unique: they are tag names)");
  }
  (void)save;
  if (cur && check_entry(&w, cur, cur_line)) return -1;
  for (int i = 0; i < c->nentries; i++)
    if (!stack_timeouts[i]) c->entries[i].timeout_ms = c->timeout_ms;
  return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int config_finish(config_t *c, char *warn, size_t warnlen) {
  warn[0] = 0;
  int have_stack = c->nentries > 0;
  if (!c->must_pass[0]) {
    if (!have_stack) {
      entry_defaults(&c->entries[0], c->timeout_ms);
      c->entries[0].is_default = true, c->entries[0].default_answer = ANSWER_ALLOW;
      snprintf(c->entries[0].name, sizeof c->entries[0].name, "default");
      c->nentries = 1;
    }
    return 0;
  }
  DIR *d = opendir(c->must_pass);
  if (!d) {
    snprintf(warn, warnlen, "%s: mustPass: cannot read the must-pass directory (%s)", c->file, strerror(errno));
    return -1;
  }
  static char names[MAX_ENTRIES][NAME_MAX_CHARS + 1];
  const char *sorted[MAX_ENTRIES];
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/%s", c->must_pass, de->d_name);
    struct stat ls, ts;
    const char *problem = NULL;
    if (lstat(link, &ls) || !S_ISLNK(ls.st_mode)) problem = "not a symlink (each entry must be a symlink named after the scanner)";
    else if (!valid_name(de->d_name)) problem = "bad scanner name (must match [a-z0-9][a-z0-9_-]{0,63})";
    else if (stat(link, &ts) || !S_ISREG(ts.st_mode)) problem = "dangling, or its target is not a regular file";
    else if (access(link, X_OK)) problem = "target is not executable";
    if (problem) {
      if (!warn[0]) snprintf(warn, warnlen, "%s: %s; skipped", link, problem);
      continue;
    }
    if (n >= MAX_ENTRIES) break;
    snprintf(names[n], sizeof names[n], "%s", de->d_name);
    sorted[n] = names[n];
    n++;
  }
  closedir(d);
  qsort(sorted, (size_t)n, sizeof sorted[0], by_name);
  if (!have_stack) {
    entry_defaults(&c->entries[0], c->timeout_ms);
    c->entries[0].is_default = true, c->entries[0].default_answer = ANSWER_ALLOW;
    snprintf(c->entries[0].name, sizeof c->entries[0].name, "default");
    c->nentries = 1;
  }
  int at = c->nentries;
  for (int i = 0; i < c->nentries; i++)
    if (c->entries[i].is_default) {
      at = i;
      break;
    }
  for (int i = 0; i < n; i++) {
    int taken = 0;
    for (int j = 0; j < c->nentries; j++) taken |= !strcmp(c->entries[j].name, sorted[i]);
    if (taken) {
      if (!warn[0]) snprintf(warn, warnlen, "%s/%s: scanner name already in the stack; link ignored", c->must_pass, sorted[i]);
      continue;
    }
    if (c->nentries >= MAX_ENTRIES) break;
    memmove(&c->entries[at + 1], &c->entries[at], sizeof(entry_t) * (size_t)(c->nentries - at));
    entry_t *e = &c->entries[at];
    entry_defaults(e, c->timeout_ms);
    snprintf(e->name, sizeof e->name, "%s", sorted[i]);
    char link[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof link, "%s/%s", c->must_pass, sorted[i]);
    ssize_t tl = readlink(link, target, sizeof target - 1);
    target[tl < 0 ? 0 : tl] = 0;
    /* The daemon resolves a relative target against the link's directory, without following further links. */
    if (target[0] == '/') snprintf(e->program, sizeof e->program, "%s", target);
    else snprintf(e->program, sizeof e->program, "%s/%s", c->must_pass, target);
    snprintf(e->origin, sizeof e->origin, "%s", link);
    c->nentries++, at++;
  }
  return 0;
}
