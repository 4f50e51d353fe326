/* One file-server client: for DURATION_MS (starting at the wall-clock time START_AT_MS, so that N clients start
 * together), pick a random file of NFILES and read it whole in 256 KiB reads; with probability WRITE_PERMILLE/1000
 * instead overwrite 512 bytes inside it (a change that forces a rescan). Read latencies (µs, float64) go to OUT;
 * stdout gets one JSON line. Errors (a denied read, a vanished file) are counted, never fatal. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "files.h"

static double wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc < 9) {
    fprintf(stderr, "usage: load DIR NFILES PER_DIR DURATION_MS WRITE_PERMILLE SEED START_AT_MS OUT\n");
    return 2;
  }
  const char *dir = argv[1], *out = argv[8];
  long nfiles = atol(argv[2]), per_dir = atol(argv[3]);
  double duration_us = atof(argv[4]) * 1e3, start_at = atof(argv[7]);
  long write_permille = atol(argv[5]);
  uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(atol(argv[6]) + 1);
  size_t cap = 1 << 16;
  long k = 0, writes = 0, errors = 0;
  double *lat = malloc(sizeof(double) * cap), bytes = 0, write_sum = 0, write_max = 0;
  char *buf = aligned_alloc(4096, 256 << 10), wbuf[512], path[4096];
  memset(wbuf, 0x5a, sizeof wbuf);
  for (double w = wall_ms(); w < start_at; w = wall_ms()) usleep((useconds_t)((start_at - w) * 1e3 > 2000 ? 2000 : (start_at - w) * 1e3));
  double t_start = now_us();
  while (now_us() - t_start < duration_us) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    long i = (long)(x % (uint64_t)nfiles);
    int is_write = (long)((x >> 32) % 1000) < write_permille;
    file_path(path, sizeof path, dir, i, per_dir);
    double t0 = now_us();
    if (is_write) {
      int fd = open(path, O_WRONLY);
      struct stat st;
      if (fd < 0 || fstat(fd, &st) < 0) {
        errors++;
        if (fd >= 0) close(fd);
        continue;
      }
      off_t off = st.st_size > 512 ? (off_t)((x >> 16) % (uint64_t)(st.st_size - 512)) : 0;
      wbuf[0] = (char)x;
      if (pwrite(fd, wbuf, sizeof wbuf, off) < 0) errors++;
      close(fd);
      double d = now_us() - t0;
      write_sum += d;
      if (d > write_max) write_max = d;
      writes++;
      continue;
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
      errors++;
      continue;
    }
    ssize_t n;
    off_t off = 0;
    while ((n = pread(fd, buf, 256 << 10, off)) > 0) off += n, bytes += n;
    if (n < 0) errors++;
    close(fd);
    if (k == (long)cap) lat = realloc(lat, sizeof(double) * (cap *= 2));
    lat[k++] = now_us() - t0;
  }
  double elapsed = (now_us() - t_start) / 1e6;
  FILE *f = fopen(out, "wb");
  if (!f || fwrite(lat, sizeof(double), k, f) != (size_t)k) {
    perror(out);
    return 1;
  }
  fclose(f);
  printf("{\"reads\":%ld,\"writes\":%ld,\"errors\":%ld,\"bytes\":%.0f,\"elapsed_s\":%.6f,\"write_mean_us\":%.3f,\"write_max_us\":%.3f}\n", k, writes,
         errors, bytes, elapsed, writes ? write_sum / writes : 0, write_max);
  return 0;
}
