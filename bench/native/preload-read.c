/* bench/preload's accessor: run once without and once with LD_PRELOAD=libblessd-preload.so.
 *   preload-read read DIR COUNT ROUNDS     open + read(4 KiB) + close of DIR/f%07d, COUNT files, ROUNDS times
 *   preload-read direct DIR COUNT SCANNER  the scanner run directly on each file (stdin = the file), as the library
 *                                          would run it: the baseline for a new file's first read
 *   preload-read floor DIR COUNT ROUNDS    read, plus the system calls the library's first check of a tagged file
 *                                          makes (fstat, FS_IOC_GETVERSION, getxattr of the tag), made here without
 *                                          the library: the floor under its first-access cost
 * Prints one JSON line: {"n":..,"median_us":..,"p99_us":..,"mean_us":..}. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "files.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: preload-read read|floor DIR COUNT ROUNDS | direct DIR COUNT SCANNER\n");
    return 2;
  }
  int direct = !strcmp(argv[1], "direct"), floor_ = !strcmp(argv[1], "floor");
  const char *dir = argv[2];
  long count = atol(argv[3]), rounds = direct ? 1 : atol(argv[4]);
  double *lat = malloc(sizeof(double) * count * rounds);
  char path[4096], buf[4096], tag[4096];
  long k = 0;
  for (long r = 0; r < rounds; r++) {
    for (long i = 0; i < count; i++) {
      file_path(path, sizeof path, dir, i, 0);
      double t0 = now_us();
      int fd = open(path, O_RDONLY);
      if (fd < 0) {
        perror(path);
        return 1;
      }
      if (direct) {
        pid_t pid = fork();
        if (pid == 0) {
          dup2(fd, 0);
          execl(argv[4], argv[4], (char *)NULL);
          _exit(127);
        }
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
          fprintf(stderr, "%s: scanner failed\n", path);
          return 1;
        }
      } else if (floor_) {
        struct stat st;
        unsigned gen;
        if (fstat(fd, &st) || ioctl(fd, FS_IOC_GETVERSION, &gen) || fgetxattr(fd, "user.scanned-by.sig", tag, sizeof tag) < 0 ||
            read(fd, buf, sizeof buf) < 0) {
          perror(path);
          return 1;
        }
      } else if (read(fd, buf, sizeof buf) < 0) {
        perror(path);
        return 1;
      }
      close(fd);
      lat[k++] = now_us() - t0;
    }
  }
  double sum = 0;
  for (long i = 0; i < k; i++) sum += lat[i];
  qsort(lat, k, sizeof(double), cmp);
  printf("{\"n\":%ld,\"median_us\":%.3f,\"p99_us\":%.3f,\"mean_us\":%.3f}\n", k, lat[k / 2], lat[(long)(k * 0.99)], sum / k);
  return 0;
}
