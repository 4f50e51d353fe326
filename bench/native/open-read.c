/* open + pread(4 KiB) + close over a list of files, timed per operation. Run as a separate process so that the
 * gate sees a stranger's accesses. Prints one JSON line: {"n":..,"median_us":..,"p99_us":..,"mean_us":..}. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: open-read DIR COUNT ROUNDS\n");
    return 2;
  }
  const char *dir = argv[1];
  int count = atoi(argv[2]), rounds = atoi(argv[3]);
  double *lat = malloc(sizeof(double) * count * rounds);
  char path[4096], buf[4096];
  int k = 0;
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < count; i++) {
      snprintf(path, sizeof path, "%s/f%05d", dir, i);
      double t0 = now_us();
      int fd = open(path, O_RDONLY);
      if (fd < 0 || pread(fd, buf, sizeof buf, 0) < 0) {
        perror(path);
        return 1;
      }
      close(fd);
      lat[k++] = now_us() - t0;
    }
  }
  double sum = 0;
  for (int i = 0; i < k; i++) sum += lat[i];
  qsort(lat, k, sizeof(double), cmp);
  printf("{\"n\":%d,\"median_us\":%.3f,\"p99_us\":%.3f,\"mean_us\":%.3f}\n", k, lat[k / 2], lat[(int)(k * 0.99)], sum / k);
  return 0;
}
