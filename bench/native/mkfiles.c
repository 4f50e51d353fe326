/* Create COUNT files of SIZE bytes (file_path names from START), each with its own pseudo-random content so that no
 * scanner can skip one as a duplicate of another. Prints the number of files made. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "files.h"

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: mkfiles DIR START COUNT SIZE PER_DIR\n");
    return 2;
  }
  const char *dir = argv[1];
  long start = atol(argv[2]), count = atol(argv[3]), size = atol(argv[4]), per_dir = atol(argv[5]);
  size_t chunk = size < (1 << 20) ? (size_t)(size > 0 ? size : 1) : (1 << 20);
  uint64_t *buf = malloc(chunk + 8);
  char path[4096];
  for (long i = start; i < start + count; i++) {
    if (per_dir > 0 && (i == start || i % per_dir == 0)) {
      snprintf(path, sizeof path, "%s/d%05ld", dir, i / per_dir);
      if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        perror(path);
        return 1;
      }
    }
    file_path(path, sizeof path, dir, i, per_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
      perror(path);
      return 1;
    }
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    for (long off = 0; off < size; off += chunk) {
      size_t n = (size_t)(size - off) < chunk ? (size_t)(size - off) : chunk;
      for (size_t k = 0; k < (n + 7) / 8; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[k] = x;
      }
      if (pwrite(fd, buf, n, off) != (ssize_t)n) {
        perror(path);
        return 1;
      }
    }
    close(fd);
  }
  printf("%ld\n", count);
  return 0;
}
