// Overview — a file's verdict tags and stamp, read through an fd we already hold (the event fd the kernel gave the
// reader thread, or JS's own descriptor): flistxattr/fgetxattr, fstat and FS_IOC_GETVERSION. Never an open on a
// guarded filesystem — the reader thread would wait for its own answer.
#pragma once
#include <sys/stat.h>
#include <cstdint>
#include <string>
#include <vector>
#include "tags/verify.h"

namespace blessd {

struct RawTag {
  std::string name;     // the xattr name
  std::string scanner;  // the part after "<ns>.scanned-by."
  std::string value;    // the raw value; `too_long` if it did not fit in the codec's limit
  bool too_long = false;
};

// Every scanned-by.* attribute of namespace `ns` on the file. False if the list could not be read (no xattr support,
// a vanished file): the caller knows nothing then.
bool read_tags(int fd, const std::string &ns, std::vector<RawTag> &out);
// The stamp as the codec writes it; `st` and `gen` (if given) get the fstat and the inode generation it came from,
// so that a caller caching the verdict need not ask the kernel again.
bool read_stamp(int fd, FileStamp &out, struct stat *st = nullptr, uint32_t *gen = nullptr);

}  // namespace blessd
