#pragma once
#include <cstdint>
#include <sys/types.h>

namespace blessd {
// Does process `pid` hold (dev, ino) open for writing (O_WRONLY or O_RDWR)? Reads /proc/<pid>/fdinfo/*.
// Used for pre-content events, which fire on write() too and do not say which: a writer is never blocked by its
// own writes (docs/kernel.md). Slow (one small read per fd of that process): callers cache positive answers.
bool process_writes_inode(pid_t pid, uint64_t dev, uint64_t ino);
// Effective uid of a live process, or -1.
long process_uid(pid_t pid);
}  // namespace blessd
