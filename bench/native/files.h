/* Shared by the bench programs: the name of file i in a bench tree, and a clock.
 * Files are DIR/f%07d, or DIR/d%05d/f%07d with PER_DIR files per directory (PER_DIR > 0). */
#pragma once
#include <stdio.h>
#include <time.h>

static inline void file_path(char *out, size_t cap, const char *dir, long i, long per_dir) {
  if (per_dir > 0) snprintf(out, cap, "%s/d%05ld/f%07ld", dir, i / per_dir, i);
  else snprintf(out, cap, "%s/f%07ld", dir, i);
}

static inline double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}
