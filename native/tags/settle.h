// Overview — settle_by_tags(fd): what the reader thread asks on a miss. Reads the file's tags through the fd it
// holds, keeps the valid result tags of the stack's scanners, adds the constant answers, and walks the stack.
// Allowed / Denied only when those answers alone decide and no observe scanner still wants the file; Unknown in
// every other case (then JS judges, as it always did). It never answers, marks or caches: the caller does.
#pragma once
#include <sys/stat.h>
#include <time.h>
#include <cstdint>
#include "tags/verify.h"

namespace blessd {

enum class Settlement : uint8_t { Unknown, Allowed, Denied };

// `st` and `gen`, if given, receive the file's fstat and inode generation as the tags were judged against them.
Settlement settle_by_tags(int fd, const TagPolicy &policy, int64_t now_ms, struct stat *st = nullptr, uint32_t *gen = nullptr);

/** The wall clock in ms, as tags record time (a lease's end, a tag's write time). */
inline int64_t wall_clock_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace blessd
