// See read.h. Buffers are per thread: the reader thread calls this for every miss, and allocates nothing per tag
// beyond the strings it hands back.
#include "tags/read.h"
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <cerrno>
#include <cstring>

namespace blessd {

namespace {
constexpr size_t kMaxValue = 4096;  // the codec's MAX_VALUE_BYTES: longer is not ours

std::string u64(unsigned long long v) { return std::to_string(v); }

std::string mtime_ns(const struct timespec &t) {
  __int128 ns = (__int128)t.tv_sec * 1000000000 + t.tv_nsec;
  if (ns < 0) return "-";  // never equal to a tag's digits: a file before 1970 is not settled here
  char buf[48];
  int i = sizeof buf;
  buf[--i] = '\0';
  do {
    buf[--i] = (char)('0' + (int)(ns % 10));
    ns /= 10;
  } while (ns > 0);
  return std::string(buf + i);
}
}  // namespace

bool read_stamp(int fd, FileStamp &out, struct stat *st_out, uint32_t *gen_out) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  unsigned int gen = 0;
  if (ioctl(fd, FS_IOC_GETVERSION, &gen) != 0) gen = 0;  // no inode generation here (tmpfs): 0, as stamp.ts says
  if (st_out) *st_out = st;
  if (gen_out) *gen_out = gen;
  out.ino = u64(st.st_ino);
  out.igen = u64(gen);
  out.size = u64((unsigned long long)st.st_size);
  out.mtime_ns = mtime_ns(st.st_mtim);
  out.ctime_ns = (__int128)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
  return true;
}

bool read_tags(int fd, const std::string &ns, std::vector<RawTag> &out) {
  thread_local std::vector<char> list(4096);
  ssize_t n;
  for (;;) {
    n = flistxattr(fd, list.data(), list.size());
    if (n >= 0) break;
    if (errno != ERANGE) return false;
    ssize_t need = flistxattr(fd, nullptr, 0);
    if (need < 0) return false;
    list.resize((size_t)need + 256);
  }
  const std::string prefix = ns + ".scanned-by.";
  thread_local char value[kMaxValue + 1];
  for (ssize_t at = 0; at < n;) {
    const char *name = list.data() + at;
    size_t len = strnlen(name, (size_t)(n - at));
    at += (ssize_t)len + 1;
    if (len <= prefix.size() || strncmp(name, prefix.data(), prefix.size()) != 0) continue;
    RawTag t;
    t.name.assign(name, len);
    t.scanner.assign(name + prefix.size(), len - prefix.size());
    ssize_t v = fgetxattr(fd, t.name.c_str(), value, sizeof value);
    if (v < 0) {
      if (errno == ENODATA) continue;  // removed between list and get: absent is absent
      if (errno != ERANGE) return false;
      t.too_long = true;
    } else if ((size_t)v > kMaxValue) {
      t.too_long = true;
    } else {
      t.value.assign(value, (size_t)v);
    }
    out.push_back(std::move(t));
  }
  return true;
}

}  // namespace blessd
