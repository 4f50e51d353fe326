// SHA-256 (FIPS 180-4) and HMAC (RFC 2104). See sha256.h for why this is hand-written.
// Two block functions: the portable one, and one with the x86 SHA extensions (SHA-NI), chosen once per process by
// CPUID. A tag's first check in a process is five blocks of HMAC; bench/preload's profile had the portable
// compress at about a fifth of the library's time on a first access, and the SHA-NI one is several times faster.
#include "sha256.h"
#include <stdatomic.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
    0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
    0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
    0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
    0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(uint32_t h[8], const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

#if defined(__x86_64__)
/* The usual SHA-NI schedule: the state kept as ABEF/CDGH, four rounds per step, the message schedule in four
 * registers that rotate (step j >= 4 derives its words from the four steps before it). */
__attribute__((target("sha,sse4.1"))) static void compress_ni(uint32_t h[8], const uint8_t *p) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
  __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);  /* EFGH */
  __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);                                        /* ABEF */
  s1 = _mm_blend_epi16(s1, tmp, 0xF0);                                             /* CDGH */
  const __m128i abef = s0, cdgh = s1;
  __m128i m[4];
#pragma GCC unroll 16
  for (int j = 0; j < 16; j++) {
    if (j < 4) m[j] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * j)), bswap);
    else
      m[j & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32(m[j & 3], m[(j + 1) & 3]), _mm_alignr_epi8(m[(j + 3) & 3], m[(j + 2) & 3], 4)),
                                      m[(j + 3) & 3]);
    __m128i w = _mm_add_epi32(m[j & 3], _mm_loadu_si128((const __m128i *)&K[4 * j]));
    s1 = _mm_sha256rnds2_epu32(s1, s0, w);
    s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(w, 0x0E));
  }
  s0 = _mm_add_epi32(s0, abef);
  s1 = _mm_add_epi32(s1, cdgh);
  tmp = _mm_shuffle_epi32(s0, 0x1B);     /* FEBA */
  s1 = _mm_shuffle_epi32(s1, 0xB1);      /* DCHG */
  s0 = _mm_blend_epi16(tmp, s1, 0xF0);   /* h[0..3] */
  s1 = _mm_alignr_epi8(s1, tmp, 8);      /* h[4..7] */
  _mm_storeu_si128((__m128i *)&h[0], s0);
  _mm_storeu_si128((__m128i *)&h[4], s1);
}

/* 0 unknown, 1 portable, 2 SHA-NI. CPUID is a VM exit under a hypervisor: asked once per process. */
static _Atomic int block_kind;

static void block(uint32_t h[8], const uint8_t *p) {
  int kind = atomic_load_explicit(&block_kind, memory_order_relaxed);
  if (kind == 0) {
    unsigned a, b, c, d;
    int ni = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)) && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 19));
    kind = ni ? 2 : 1;
    atomic_store_explicit(&block_kind, kind, memory_order_relaxed);
  }
  if (kind == 2) compress_ni(h, p);
  else compress(h, p);
}
#else
#define block compress
#endif

void sha256_init(sha256_ctx *c) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, iv, sizeof iv);
  c->length = 0;
  c->used = 0;
}

void sha256_update(sha256_ctx *c, const void *data, size_t n) {
  const uint8_t *p = data;
  c->length += n;
  if (c->used) {
    size_t take = 64 - c->used < n ? 64 - c->used : n;
    memcpy(c->block + c->used, p, take);
    c->used += take, p += take, n -= take;
    if (c->used < 64) return;
    block(c->h, c->block);
    c->used = 0;
  }
  for (; n >= 64; p += 64, n -= 64) block(c->h, p);
  memcpy(c->block, p, n);
  c->used = n;
}

void sha256_final(sha256_ctx *c, uint8_t out[SHA256_BYTES]) {
  uint64_t bits = c->length * 8;
  c->block[c->used++] = 0x80;
  if (c->used > 56) {
    memset(c->block + c->used, 0, 64 - c->used);
    block(c->h, c->block);
    c->used = 0;
  }
  memset(c->block + c->used, 0, 56 - c->used);
  for (int i = 0; i < 8; i++) c->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
  block(c->h, c->block);
  c->used = 0;
  for (int i = 0; i < 8; i++) out[4 * i] = c->h[i] >> 24, out[4 * i + 1] = c->h[i] >> 16, out[4 * i + 2] = c->h[i] >> 8, out[4 * i + 3] = c->h[i];
}

void hmac_init(hmac_ctx *c, const uint8_t *key, size_t key_len) {
  uint8_t k[64] = {0}, pad[64];
  if (key_len > 64) {
    sha256_ctx t;
    sha256_init(&t);
    sha256_update(&t, key, key_len);
    sha256_final(&t, k);
  } else {
    memcpy(k, key, key_len);
  }
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
  sha256_init(&c->inner);
  sha256_update(&c->inner, pad, 64);
  for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
  sha256_init(&c->outer);
  sha256_update(&c->outer, pad, 64);
}

void hmac_update(hmac_ctx *c, const void *data, size_t n) { sha256_update(&c->inner, data, n); }

void hmac_final(hmac_ctx *c, uint8_t out[SHA256_BYTES]) {
  uint8_t inner[SHA256_BYTES];
  sha256_final(&c->inner, inner);
  sha256_update(&c->outer, inner, sizeof inner);
  sha256_final(&c->outer, out);
}

void hex_encode(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) out[2 * i] = digits[in[i] >> 4], out[2 * i + 1] = digits[in[i] & 15];
  out[2 * n] = 0;
}
