// Verdict tags in user.scanned-by.<scanner>: the daemon's codec (src/tags/codec.ts), stamp (src/tags/stamp.ts) and
// MAC (src/tags/mac.ts), in C, so that a tag either side writes verifies on the other. The key is the calling
// user's own ($XDG_STATE_HOME/blessd/key, 0600): it keeps other users and copied values out, not the user.
#ifndef BLESSD_PRELOAD_TAGS_H
#define BLESSD_PRELOAD_TAGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "stack.h"

#define TAG_KEY_BYTES 32
#define TAG_MAX_VALUE 4096
#define TAG_PREFIX "user.scanned-by."

typedef struct {
  uint64_t dev; /* not part of the tag: for the library's own caches */
  uint64_t ino;
  uint32_t igen; /* FS_IOC_GETVERSION; 0 where the filesystem has none */
  int64_t size;
  int64_t mtime_ns;
  int64_t ctime_ns; /* not part of the tag: any xattr or content change moves it (the library's caches key on it) */
} stamp_t;

/* The file's stamp through its descriptor. Returns 0, or -1 with errno (from fstat). *regular says S_ISREG. */
int stamp_read(int fd, stamp_t *s, bool *regular);
/* stamp_read in two halves: fstat only (igen left 0), and the inode generation (an ioctl) for a regular file. */
int stamp_stat(int fd, stamp_t *s, bool *regular);
void stamp_igen(int fd, stamp_t *s);
bool stamp_same(const stamp_t *a, const stamp_t *b);

/* Load the key at path, creating it (and its directory, 0700) on first use. 0, or -1 with msg set. */
int key_load(const char *path, uint8_t key[TAG_KEY_BYTES], char *msg, size_t msglen);

/* The exec actor's generation for a program: sha256(bytes, "\0", path) in hex, plus "#<bump>". 0 or -1. */
int program_generation(const char *program, unsigned bump, char *out, size_t outlen);

typedef enum { TAG_ABSENT, TAG_VALID, TAG_STALE, TAG_BAD } tag_state_t;

/* Judge the value of `scanner`'s tag against the file's stamp and the current generation. On TAG_VALID *answer is
 * set. TAG_STALE: ours but for another stamp/generation (or a scanning lease); TAG_BAD: not ours or bad MAC. */
tag_state_t tag_judge(const uint8_t key[TAG_KEY_BYTES], const char *scanner, const char *value, size_t len, const stamp_t *now,
                      const char *generation, bool mac_known_good, answer_t *answer);

/* Encode and sign a result tag. Returns the value length, or -1 if it does not fit. */
int tag_encode(const uint8_t key[TAG_KEY_BYTES], const char *scanner, answer_t answer, const char *generation, const stamp_t *s,
               int64_t time_ms, const char *reason, char *out, size_t outlen);

#endif
