/* open + read + close over files START..START+COUNT-1, ROUNDS times, timed per file. Run as a separate process so
 * that a gate sees a stranger's accesses. READ bytes per read() call; WHOLE=1 reads to the end of the file, 0 reads
 * once. Per-access latencies (µs, float64) go to OUT unless it is "-"; stdout gets one JSON line. An optional
 * LIMIT_S stops the pass after that many seconds (the JSON says how many files were done). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "files.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 9) {
    fprintf(stderr, "usage: access DIR START COUNT PER_DIR ROUNDS READ WHOLE OUT [LIMIT_S]\n");
    return 2;
  }
  const char *dir = argv[1], *out = argv[8];
  long start = atol(argv[2]), count = atol(argv[3]), per_dir = atol(argv[4]), rounds = atol(argv[5]);
  size_t rsize = (size_t)atol(argv[6]);
  int whole = atoi(argv[7]);
  double limit_us = argc > 9 ? atof(argv[9]) * 1e6 : 0;
  int stopped = 0;
  double *lat = malloc(sizeof(double) * count * rounds);
  char *buf = aligned_alloc(4096, rsize < 4096 ? 4096 : rsize);
  char path[4096];
  long k = 0, errors = 0;
  double bytes = 0, t_start = now_us();
  for (long r = 0; r < rounds; r++) {
    for (long i = start; i < start + count && !stopped; i++) {
      if (limit_us > 0 && (k & 63) == 0 && now_us() - t_start > limit_us) {
        stopped = 1;
        break;
      }
      file_path(path, sizeof path, dir, i, per_dir);
      double t0 = now_us();
      int fd = open(path, O_RDONLY);
      if (fd < 0) {
        errors++;
        continue;
      }
      ssize_t n;
      off_t off = 0;
      do {
        n = pread(fd, buf, rsize, off);
        if (n > 0) off += n, bytes += n;
      } while (whole && n > 0);
      if (n < 0) errors++;
      close(fd);
      lat[k++] = now_us() - t0;
    }
  }
  double elapsed = (now_us() - t_start) / 1e6;
  if (strcmp(out, "-") != 0) {
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(lat, sizeof(double), k, f) != (size_t)k) {
      perror(out);
      return 1;
    }
    fclose(f);
  }
  double sum = 0;
  for (long i = 0; i < k; i++) sum += lat[i];
  qsort(lat, k, sizeof(double), cmp);
  printf("{\"n\":%ld,\"stopped\":%d,\"errors\":%ld,\"median_us\":%.3f,\"p99_us\":%.3f,\"mean_us\":%.3f,\"elapsed_s\":%.6f,\"bytes\":%.0f}\n", k, stopped, errors,
         k ? lat[k / 2] : 0, k ? lat[(long)(k * 0.99)] : 0, k ? sum / k : 0, elapsed, bytes);
  return 0;
}
