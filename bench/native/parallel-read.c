/* THREADS threads, each looping open + pread(4 KiB) + close over its share of DIR/f00000..f<COUNT-1> for SECONDS:
 * many accessors waiting on the gate at once, so that forwarded permission events arrive in batches (bench/gate's
 * throughput row). Run as a separate process so that the gate sees a stranger. Prints one JSON line with the
 * accesses done, failed ones, and the wall time. A thread's share is files i, i+THREADS, ...: no two threads touch
 * the same file at the same time. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static int count, threads;
static double seconds;
static atomic_long done, errors;
static atomic_int go;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *reader(void *arg) {
  long self = (long)arg, n = 0, bad = 0;
  char path[4096], buf[4096];
  while (!atomic_load(&go)) { /* all threads start together */ }
  double end = now_s() + seconds;
  for (long i = self; ; i += threads) {
    if ((n & 15) == 0 && now_s() >= end) break;
    snprintf(path, sizeof path, "%s/f%05ld", dir, i % count);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
      bad++;
      n++;
      continue;
    }
    if (pread(fd, buf, sizeof buf, 0) < 0) bad++;
    close(fd);
    n++;
  }
  atomic_fetch_add(&done, n);
  atomic_fetch_add(&errors, bad);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: parallel-read DIR COUNT THREADS SECONDS\n");
    return 2;
  }
  dir = argv[1];
  count = atoi(argv[2]);
  threads = atoi(argv[3]);
  seconds = atof(argv[4]);
  if (count < 1 || threads < 1 || threads > 4096 || !(seconds > 0)) {
    fprintf(stderr, "parallel-read: bad arguments\n");
    return 2;
  }
  pthread_t *t = calloc(threads, sizeof *t);
  for (long i = 0; i < threads; i++)
    if (pthread_create(&t[i], NULL, reader, (void *)i) != 0) {
      perror("pthread_create");
      return 1;
    }
  double t0 = now_s();
  atomic_store(&go, 1);
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  double elapsed = now_s() - t0;
  printf("{\"accesses\":%ld,\"errors\":%ld,\"elapsed_s\":%.4f}\n", atomic_load(&done), atomic_load(&errors), elapsed);
  return 0;
}
