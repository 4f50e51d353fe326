// SHA-256 and HMAC-SHA-256, for tag MACs and scanner generations.
// Hand-written (FIPS 180-4, RFC 2104) rather than linked from libcrypto: this code runs inside every program the
// library is preloaded into, and pulling a second OpenSSL into a host that links its own (another version) invites
// symbol clashes. No allocation: everything lives in the caller's context struct.
#ifndef BLESSD_PRELOAD_SHA256_H
#define BLESSD_PRELOAD_SHA256_H
#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

typedef struct {
  uint32_t h[8];
  uint64_t length; /* bytes hashed so far */
  uint8_t block[64];
  size_t used; /* bytes in block */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_BYTES]);

typedef struct {
  sha256_ctx inner;
  sha256_ctx outer;
} hmac_ctx;

void hmac_init(hmac_ctx *c, const uint8_t *key, size_t key_len);
void hmac_update(hmac_ctx *c, const void *data, size_t n);
void hmac_final(hmac_ctx *c, uint8_t out[SHA256_BYTES]);

/* Lower-case hex of n bytes into out (2n+1 bytes with the NUL). */
void hex_encode(const uint8_t *in, size_t n, char *out);

#endif
