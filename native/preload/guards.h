// What a running blessd daemon guards, as it publishes it (src/daemon/published-guards.ts): where the daemon gates
// a filesystem, the library steps aside, so a file is never scanned twice.
#ifndef BLESSD_PRELOAD_GUARDS_H
#define BLESSD_PRELOAD_GUARDS_H
#include <stdbool.h>
#include <stdint.h>

#define GUARDS_FILE_DEFAULT "/run/blessd/guards"

/* Whether a live daemon guards this file (by st_dev; for a tree guard, also by path prefix when a path is known).
 * Re-reads the published file at most once a second; never allocates. */
bool guards_cover(uint64_t dev, const char *path);
void guards_init(const char *file);

#endif
