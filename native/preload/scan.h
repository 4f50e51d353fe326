// Running one exec scanner on an open file: the exec actor's contract (actors/exec.ts), in the calling process.
#ifndef BLESSD_PRELOAD_SCAN_H
#define BLESSD_PRELOAD_SCAN_H
#include <stddef.h>
#include "config.h"

typedef enum { SCAN_ANSWER, SCAN_ERROR, SCAN_TIMEOUT } scan_status_t;

/* Feed the content of fd (from offset 0, by pread: the caller's offset does not move) to e->program's stdin.
 * On SCAN_ANSWER *answer is set (and reason, for a deny); otherwise why says what went wrong. */
scan_status_t scan_run(const entry_t *e, int fd, long long size, const char *display_path, answer_t *answer, char *reason, size_t rlen,
                       char *why, size_t wlen);

#endif
