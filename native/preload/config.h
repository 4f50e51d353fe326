// The library's configuration: preload.yaml, parsed into static storage (no allocation), and the stack it implies.
#ifndef BLESSD_PRELOAD_CONFIG_H
#define BLESSD_PRELOAD_CONFIG_H
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include "stack.h"

#define MAX_ENTRIES 16
#define MAX_LIST 32
#define NAME_MAX_CHARS 64
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_SIZE (1LL << 30)

typedef enum { FAIL_DENY, FAIL_OK, FAIL_RETRY } on_failure_t;

typedef struct {
  char name[NAME_MAX_CHARS + 1];
  char program[PATH_MAX]; /* empty for a default entry */
  bool is_default;
  answer_t default_answer; /* default entries: what they answer */
  control_t control;
  bool ask; /* control: ask — a failed scan asks the terminal, then falls back to onError/onTimeout */
  on_failure_t on_error, on_timeout;
  answer_t on_too_large;
  long timeout_ms;
  long long max_size;
  char origin[PATH_MAX + 32]; /* "file:line" or the must-pass link, for messages */
} entry_t;

typedef struct {
  char file[PATH_MAX];
  char must_pass[PATH_MAX];
  char paths[MAX_LIST][PATH_MAX]; /* gated directories; none configured: $HOME */
  int npaths;
  char never[MAX_LIST][PATH_MAX]; /* programs never gated: a basename or an absolute path */
  int nnever;
  long timeout_ms; /* for must-pass entries */
  entry_t entries[MAX_ENTRIES];
  int nentries;
} config_t;

/* Parse `path` into c. Returns 0, 1 when the file does not exist, -1 on an error described in err
 * ("file:line:col: key: problem"). Uses the real (unwrapped) open/read it is given. */
int config_parse(const char *path, config_t *c, char *err, size_t errlen);

/* Add the must-pass directory's links before the first default entry (the daemon's 'beforeDefault'), or append a
 * `default: allow` when no stack was written. Bad links are skipped; *warn says so for the first one. */
int config_finish(config_t *c, char *warn, size_t warnlen);

#endif
