// The floor of a hash database on real files: OpenSSL's EVP digest fed by pread into one reused buffer, in C, no
// JS at all. bench/engine runs it against the same files in the same run as the signature engine.
// usage: digest-floor md5|sha1|sha256 CHUNK FILE... -> prints "MB_PER_CPU_SECOND BYTES"
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double cpu(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) return fprintf(stderr, "usage: digest-floor ALGO CHUNK FILE...\n"), 2;
  const EVP_MD *md = EVP_get_digestbyname(argv[1]);
  size_t chunk = strtoul(argv[2], NULL, 10);
  unsigned char *buf = malloc(chunk);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!md || !buf || !ctx || chunk == 0) return fprintf(stderr, "digest-floor: bad algorithm or chunk\n"), 2;
  double t0 = cpu();
  unsigned long long total = 0;
  for (int i = 3; i < argc; i++) {
    int fd = open(argv[i], O_RDONLY);
    if (fd < 0) return perror(argv[i]), 1;
    EVP_DigestInit_ex(ctx, md, NULL);
    off_t at = 0;
    ssize_t n;
    while ((n = pread(fd, buf, chunk, at)) > 0) {
      EVP_DigestUpdate(ctx, buf, (size_t)n);
      at += n;
    }
    if (n < 0) return perror(argv[i]), 1;
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned len;
    EVP_DigestFinal_ex(ctx, out, &len);
    total += (unsigned long long)at;
    close(fd);
  }
  printf("%.1f %llu\n", total / 1e6 / (cpu() - t0), total);
  return 0;
}
