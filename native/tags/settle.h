// Overview — settle_by_tags(fd): what the reader thread asks on a miss. Reads the file's tags through the fd it
// holds, keeps the valid result tags of the stack's scanners, adds the constant answers, and walks the stack.
// Allowed / Denied only when those answers alone decide and no observe scanner still wants the file; Unknown in
// every other case (then JS judges, as it always did). It never answers, marks or caches: the caller does.
#pragma once
#include <cstdint>
#include "tags/verify.h"

namespace blessd {

enum class Settlement : uint8_t { Unknown, Allowed, Denied };

Settlement settle_by_tags(int fd, const TagPolicy &policy, int64_t now_ms);

}  // namespace blessd
