// The native verdict table: what the reader thread may answer alone, without JS.
// Keyed by (dev, ino); the inode generation guards against a recycled inode number inheriting a verdict.
// Holds only cached knowledge: the truth lives in the tags on disk, so dropping the table is always safe.
#pragma once
#include <cstdint>
#include <string>
#include <sys/stat.h>
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
  bool hit = false;              // Allowed: the table answered an event of it, so its ignore mark does not silence it
  // The file as it was when the verdict was cached. An Allowed entry whose file changed since is not trusted (a write
  // may be racing its change record); a Denied entry survives a close-after-write that changed nothing.
  bool stamp_known = false;
  int64_t mtime_ns = 0, ctime_ns = 0, size = 0;
  bool open_marked = false;      // Denied: the inode carries our FAN_OPEN_PERM mark (kDenyOpenMask), to remove with it
  int handle_type = 0;           // for removing the ignore or deny mark later without holding an fd
  std::string handle;            // file handle bytes (empty when unknown)
};

inline void take_stamp(VerdictEntry &e, const struct stat &st) {
  e.stamp_known = true;
  e.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
  e.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
  e.size = (int64_t)st.st_size;
}
// Content unchanged: same size and mtime (shared-mapping stores update mtime too). For Denied entries only: a user
// who puts the mtime back merely keeps their own file denied.
inline bool same_content_stamp(const VerdictEntry &e, const struct stat &st) {
  return e.stamp_known && e.size == (int64_t)st.st_size && e.mtime_ns == (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}
// Nothing at all changed, ctime included (a user cannot set ctime): what an Allowed entry needs to be trusted.
inline bool same_full_stamp(const VerdictEntry &e, const struct stat &st) {
  return same_content_stamp(e, st) && e.ctime_ns == (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
}

using VerdictTable = std::unordered_map<InodeKey, VerdictEntry, InodeKeyHash>;

}  // namespace blessd
