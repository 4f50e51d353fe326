// The tag codec, stamp, key and generation, matching the daemon byte for byte (see tags.h).
#include "tags.h"
#include <errno.h>
#include <stdatomic.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include "sha256.h"
#include "sys.h"

static const char MAC_DOMAIN[] = "blessd-tag-mac-v1";

int stamp_stat(int fd, stamp_t *s, bool *regular) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -1;
  *regular = S_ISREG(st.st_mode);
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->size = st.st_size;
  s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  s->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
  s->igen = 0;
  return 0;
}

void stamp_igen(int fd, stamp_t *s) {
  unsigned int gen = 0; /* the kernel writes an int-sized value despite the long in the macro */
  int saved = errno;
  if (ioctl(fd, FS_IOC_GETVERSION, &gen) == 0) s->igen = gen;
  errno = saved;
}

int stamp_read(int fd, stamp_t *s, bool *regular) {
  if (stamp_stat(fd, s, regular) != 0) return -1;
  if (*regular) stamp_igen(fd, s);
  return 0;
}

bool stamp_same(const stamp_t *a, const stamp_t *b) {
  return a->ino == b->ino && a->igen == b->igen && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

static int read_key(const char *path, uint8_t key[TAG_KEY_BYTES], char *msg, size_t msglen) {
  int fd = sys_open(path, O_RDONLY | O_NOFOLLOW, 0);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    sys_close(fd);
    snprintf(msg, msglen, "key file %s: not a regular file", path);
    return -2;
  }
  if (st.st_mode & 077) {
    sys_close(fd);
    snprintf(msg, msglen, "key file %s: mode %o lets others read it (anyone who can read it can forge tags); chmod 600 it", path,
             (unsigned)(st.st_mode & 0777));
    return -2;
  }
  uint8_t buf[TAG_KEY_BYTES + 1];
  ssize_t n = sys_pread(fd, buf, sizeof buf, 0);
  sys_close(fd);
  if (n != TAG_KEY_BYTES) {
    snprintf(msg, msglen, "key file %s: %zd bytes, expected %d", path, n, TAG_KEY_BYTES);
    return -2;
  }
  memcpy(key, buf, TAG_KEY_BYTES);
  return 0;
}

static void mkdirs(const char *dir) {
  char p[4096];
  snprintf(p, sizeof p, "%s", dir);
  for (char *s = p + 1; *s; s++)
    if (*s == '/') {
      *s = 0;
      mkdir(p, 0700);
      *s = '/';
    }
  mkdir(p, 0700);
}

int key_load(const char *path, uint8_t key[TAG_KEY_BYTES], char *msg, size_t msglen) {
  int saved = errno;
  int rc = read_key(path, key, msg, msglen);
  if (rc == -1 && errno == ENOENT) {
    /* Create it as the daemon's key.ts does: a temp file linked into place, so two first users agree on one key. */
    char dir[4096], tmp[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) *slash = 0, mkdirs(dir);
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid());
    int fd = sys_open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    uint8_t fresh[TAG_KEY_BYTES];
    if (fd >= 0 && getrandom(fresh, sizeof fresh, 0) == (ssize_t)sizeof fresh && sys_write(fd, fresh, sizeof fresh) == (ssize_t)sizeof fresh &&
        fsync(fd) == 0) {
      sys_close(fd);
      if (link(tmp, path) != 0 && errno != EEXIST) fd = -1;
    } else if (fd >= 0) {
      sys_close(fd);
      fd = -1;
    }
    unlink(tmp);
    rc = fd < 0 ? -1 : read_key(path, key, msg, msglen);
  }
  if (rc == -1) snprintf(msg, msglen, "key file %s: %s", path, strerror(errno));
  errno = saved;
  return rc == 0 ? 0 : -1;
}

int program_generation(const char *program, unsigned bump, char *out, size_t outlen) {
  int fd = sys_open(program, O_RDONLY, 0);
  if (fd < 0) return -1;
  sha256_ctx c;
  sha256_init(&c);
  uint8_t buf[8192];
  for (;;) {
    ssize_t n = sys_read(fd, buf, sizeof buf);
    if (n < 0) {
      sys_close(fd);
      return -1;
    }
    if (n == 0) break;
    sha256_update(&c, buf, (size_t)n);
  }
  sys_close(fd);
  sha256_update(&c, "", 1);
  sha256_update(&c, program, strlen(program));
  uint8_t digest[SHA256_BYTES];
  sha256_final(&c, digest);
  char hex[2 * SHA256_BYTES + 1];
  hex_encode(digest, SHA256_BYTES, hex);
  return snprintf(out, outlen, "%s#%u", hex, bump) < (int)outlen ? 0 : -1;
}

/* encodeURIComponent of ASCII text (bytes >= 0x80 were replaced before): unreserved characters stay. */
static size_t pct(const char *in, char *out, size_t cap) {
  static const char hexd[] = "0123456789ABCDEF";
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
    int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("-_.!~*'()", *p);
    if (n + 4 > cap) return (size_t)-1;
    if (keep) out[n++] = (char)*p;
    else out[n++] = '%', out[n++] = hexd[*p >> 4], out[n++] = hexd[*p & 15];
  }
  out[n] = 0;
  return n;
}

/* The HMAC state after the key's pad blocks, kept for the one key a process uses: two of the six or so SHA-256
 * blocks a tag costs. Written once before any reader can see `keyed_ready` (the key never changes in a process). */
static hmac_ctx keyed;
static uint8_t keyed_for[TAG_KEY_BYTES];
static _Atomic int keyed_ready;

static void mac_hex(const uint8_t key[TAG_KEY_BYTES], const char *scanner, const char *body, size_t body_len, char out[65]) {
  char name[128];
  int nl = snprintf(name, sizeof name, TAG_PREFIX "%s", scanner);
  hmac_ctx h;
  if (atomic_load(&keyed_ready) == 2 && !memcmp(keyed_for, key, TAG_KEY_BYTES)) {
    h = keyed;
  } else {
    hmac_init(&h, key, TAG_KEY_BYTES);
    int expect = 0;
    if (atomic_compare_exchange_strong(&keyed_ready, &expect, 1)) {
      keyed = h;
      memcpy(keyed_for, key, TAG_KEY_BYTES);
      atomic_store(&keyed_ready, 2);
    }
  }
  hmac_update(&h, MAC_DOMAIN, sizeof MAC_DOMAIN); /* with its NUL: the "\0" separator */
  hmac_update(&h, name, (size_t)nl + 1);
  hmac_update(&h, scanner, strlen(scanner) + 1);
  hmac_update(&h, body, body_len);
  uint8_t mac[SHA256_BYTES];
  hmac_final(&h, mac);
  hex_encode(mac, SHA256_BYTES, out);
}

int tag_encode(const uint8_t key[TAG_KEY_BYTES], const char *scanner, answer_t answer, const char *generation, const stamp_t *s,
               int64_t time_ms, const char *reason, char *out, size_t outlen) {
  char gen[600], why[1600];
  if (pct(generation, gen, 257) == (size_t)-1) return -1;
  int n = snprintf(out, outlen, "v1 %s gen=%s ino=%llu igen=%u size=%lld mtime=%lld time=%lld", answer_name(answer), gen,
                   (unsigned long long)s->ino, s->igen, (long long)s->size, (long long)s->mtime_ns, (long long)time_ms);
  if (n < 0 || (size_t)n >= outlen) return -1;
  if (reason && reason[0]) {
    char clean[512];
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)reason; *p && k < 200; p++) clean[k++] = *p >= 0x80 || *p < 0x20 ? '?' : (char)*p;
    clean[k] = 0;
    if (pct(clean, why, sizeof why) == (size_t)-1) return -1;
    int m = snprintf(out + n, outlen - (size_t)n, " reason=%s", why);
    if (m < 0 || (size_t)(n + m) >= outlen) return -1;
    n += m;
  }
  char mac[65];
  mac_hex(key, scanner, out, (size_t)n, mac);
  int m = snprintf(out + n, outlen - (size_t)n, " mac=%s", mac);
  if (m < 0 || (size_t)(n + m) >= outlen) return -1;
  return n + m;
}

/* The text of field `name` at *p ("name=value "), advancing past it; NULL if the next token is another field. */
static const char *field(const char **p, const char *end, const char *name, size_t *len) {
  size_t nl = strlen(name);
  if ((size_t)(end - *p) < nl + 1 || memcmp(*p, name, nl) || (*p)[nl] != '=') return NULL;
  const char *v = *p + nl + 1;
  const char *sp = memchr(v, ' ', (size_t)(end - v));
  const char *stop = sp ? sp : end;
  *len = (size_t)(stop - v);
  *p = sp ? sp + 1 : end;
  return v;
}

static bool field_is(const char **p, const char *end, const char *name, const char *want) {
  size_t len;
  const char *v = field(p, end, name, &len);
  return v && len == strlen(want) && !memcmp(v, want, len);
}

/* Decimal text of u (as %llu writes it), or of v (as %lld), into out (24 bytes); returns it. The four snprintf
 * calls these replace were a tenth of a first tag check in bench/preload's profile. */
static const char *udec(uint64_t u, char out[24]) {
  char *p = out + 23;
  *p = 0;
  do *--p = (char)('0' + u % 10);
  while (u /= 10);
  return p;
}
static const char *dec(int64_t v, char out[24]) {
  if (v >= 0) return udec((uint64_t)v, out);
  char *p = (char *)udec(0 - (uint64_t)v, out);
  *--p = '-';
  return p;
}

/* Whether field `name` holds encodeURIComponent(plain) (ASCII), compared as it is decoded: no buffer to encode into. */
static bool field_is_pct(const char **p, const char *end, const char *name, const char *plain) {
  static const char hexd[] = "0123456789ABCDEF";
  size_t len;
  const char *v = field(p, end, name, &len);
  if (!v) return false;
  size_t i = 0;
  for (const unsigned char *c = (const unsigned char *)plain; *c; c++) {
    int keep = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("-_.!~*'()", *c);
    if (keep) {
      if (i >= len || v[i] != (char)*c) return false;
      i++;
    } else {
      if (i + 3 > len || v[i] != '%' || v[i + 1] != hexd[*c >> 4] || v[i + 2] != hexd[*c & 15]) return false;
      i += 3;
    }
  }
  return i == len;
}

tag_state_t tag_judge(const uint8_t key[TAG_KEY_BYTES], const char *scanner, const char *value, size_t len, const stamp_t *now,
                      const char *generation, bool mac_known_good, answer_t *answer) {
  if (len < 8 || len > TAG_MAX_VALUE || memcmp(value, "v1 ", 3)) return TAG_BAD;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e) return TAG_BAD;
  /* the MAC is the last field; nothing in the value is believed before it verifies */
  const char *mac = NULL;
  for (size_t i = len; i-- > 4;)
    if (!memcmp(value + i - 4, " mac=", 5)) {
      mac = value + i + 1;
      break;
    }
  if (!mac || (size_t)(value + len - mac) != 64) return TAG_BAD;
  size_t body_len = (size_t)(mac - 5 - value);
  if (!mac_known_good) {
    char want[65];
    mac_hex(key, scanner, value, body_len, want);
    unsigned diff = 0;
    for (int i = 0; i < 64; i++) diff |= (unsigned char)(want[i] ^ mac[i]);
    if (diff) return TAG_BAD;
  }
  const char *p = value + 3, *end = value + body_len;
  answer_t a;
  if (end - p >= 5 && !memcmp(p, "deny ", 5)) a = ANSWER_DENY, p += 5;
  else if (end - p >= 3 && !memcmp(p, "ok ", 3)) a = ANSWER_OK, p += 3;
  else if (end - p >= 6 && !memcmp(p, "allow ", 6)) a = ANSWER_ALLOW, p += 6;
  else return TAG_STALE; /* a scanning lease (ours, signed): no verdict yet */
  char num[24];
  bool same = field_is_pct(&p, end, "gen", generation);
  same = field_is(&p, end, "ino", udec(now->ino, num)) && same;
  same = field_is(&p, end, "igen", udec(now->igen, num)) && same;
  same = field_is(&p, end, "size", dec(now->size, num)) && same;
  same = field_is(&p, end, "mtime", dec(now->mtime_ns, num)) && same;
  if (!same) return TAG_STALE;
  *answer = a;
  return TAG_VALID;
}
