// Overview — whole-file digests for the signature engine (see digests.h). Owns one EVP context per algorithm,
// reused file after file (a context per file would be an allocation per file on the 4 KiB path).
// Must not: make a syscall or touch JS; report a digest OpenSSL did not finish (Finish says so instead).
#include "digest/digests.h"

namespace blessd {

namespace {
const EVP_MD* Md(int algo) { return algo == kMd5 ? EVP_md5() : algo == kSha1 ? EVP_sha1() : EVP_sha256(); }
}  // namespace

DigestSet::DigestSet() {
  for (auto& c : ctx_) c = EVP_MD_CTX_new();
}

DigestSet::~DigestSet() {
  for (auto* c : ctx_) EVP_MD_CTX_free(c);
}

bool DigestSet::Begin(uint32_t mask) {
  mask_ = 0;
  failed_ = false;
  for (int a = 0; a < kDigestAlgos; a++) {
    if (!(mask & (1u << a))) continue;
    if (!ctx_[a] || EVP_DigestInit_ex(ctx_[a], Md(a), nullptr) != 1) return false;
    mask_ |= 1u << a;
  }
  return true;
}

void DigestSet::Update(const uint8_t* data, size_t length) {
  if (length == 0) return;
  for (int a = 0; a < kDigestAlgos; a++)
    if ((mask_ & (1u << a)) && EVP_DigestUpdate(ctx_[a], data, length) != 1) failed_ = true;
}

bool DigestSet::Finish(uint8_t* out) {
  bool ok = !failed_;
  for (int a = 0; a < kDigestAlgos; a++) {
    if (!(mask_ & (1u << a))) continue;
    unsigned int n = 0;
    ok = EVP_DigestFinal_ex(ctx_[a], out + kDigestAt[a], &n) == 1 && n == kDigestSize[a] && ok;
  }
  mask_ = 0;
  return ok;
}

}  // namespace blessd
