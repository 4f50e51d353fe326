// Whole-file digests for the signature engine's scan pass: MD5, SHA-1 and SHA-256 through OpenSSL's EVP interface
// (Node's own OpenSSL: the addon is built against its headers and resolves the symbols in the node binary).
#pragma once
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>

namespace blessd {

// Bit i of a mask is algorithm i; results go to a caller's buffer at kDigestAt[i] (kDigestBytesTotal in all).
enum DigestAlgo : int { kMd5 = 0, kSha1 = 1, kSha256 = 2, kDigestAlgos = 3 };
constexpr size_t kDigestSize[kDigestAlgos] = {16, 20, 32};
constexpr size_t kDigestAt[kDigestAlgos] = {0, 16, 36};
constexpr size_t kDigestBytesTotal = 68;

class DigestSet {
 public:
  DigestSet();
  ~DigestSet();
  DigestSet(const DigestSet&) = delete;
  DigestSet& operator=(const DigestSet&) = delete;

  // Start the algorithms in `mask` (the others stay idle). False if OpenSSL refused (then nothing is computed).
  bool Begin(uint32_t mask);
  void Update(const uint8_t* data, size_t length);
  // Write each started digest at kDigestAt[algo] of `out` (kDigestBytesTotal bytes). False if OpenSSL failed.
  bool Finish(uint8_t* out);

 private:
  EVP_MD_CTX* ctx_[kDigestAlgos] = {};
  uint32_t mask_ = 0;
  bool failed_ = false;
};

}  // namespace blessd
