// The native verdict table: what the reader thread may answer alone, without JS.
// Keyed by (dev, ino); the inode generation guards against a recycled inode number inheriting a verdict.
// Holds only cached knowledge: the truth lives in the tags on disk, so dropping the table is always safe.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>

namespace blessd {

struct InodeKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool operator==(const InodeKey &o) const { return dev == o.dev && ino == o.ino; }
};

struct InodeKeyHash {
  size_t operator()(const InodeKey &k) const { return std::hash<uint64_t>()(k.ino * 0x9E3779B97F4A7C15ULL ^ k.dev); }
};

enum class Verdict : uint8_t {
  Allowed,  // blessed: answer allow; an ignore mark should keep the kernel silent
  Denied,   // answer `response` without asking JS
  Dirty,    // content changed since the last verdict: forward; also what coalesces repeated modify events
};

struct VerdictEntry {
  Verdict verdict = Verdict::Dirty;
  uint32_t gen = 0;
  bool gen_known = false;
  uint32_t response = 0;         // for Denied
  int64_t mark_retry_ns = 0;     // last time the reader re-added a refused ignore mark (Allowed)
  int handle_type = 0;           // for removing the ignore mark later without holding an fd
  std::string handle;            // file handle bytes (empty when unknown)
};

using VerdictTable = std::unordered_map<InodeKey, VerdictEntry, InodeKeyHash>;

}  // namespace blessd
