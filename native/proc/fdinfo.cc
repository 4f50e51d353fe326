// /proc/<pid>/fdinfo: which of a process's descriptors are open for writing on a given inode.
#include "proc/fdinfo.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace blessd {

bool process_writes_inode(pid_t pid, uint64_t dev, uint64_t ino) {
  char dir_path[64];
  snprintf(dir_path, sizeof dir_path, "/proc/%d/fdinfo", (int)pid);
  int dir_fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return false;
  DIR *dir = fdopendir(dir_fd);
  if (!dir) {
    close(dir_fd);
    return false;
  }
  bool found = false;
  char buf[512];
  while (!found) {
    struct dirent *de = readdir(dir);
    if (!de) break;
    if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
    int fd = openat(dir_fd, de->d_name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    const char *f = strstr(buf, "\nflags:");
    const char *i = strstr(buf, "\nino:");
    if (!f || !i) continue;
    unsigned long flags = strtoul(f + 7, nullptr, 8);  // octal in fdinfo
    unsigned long long fino = strtoull(i + 5, nullptr, 10);
    if (fino != ino || (flags & O_ACCMODE) == O_RDONLY) continue;
    // Same inode number and a write mode: confirm the device through the fd link itself.
    char link[300];
    snprintf(link, sizeof link, "/proc/%d/fd/%s", (int)pid, de->d_name);
    struct stat st;
    if (stat(link, &st) == 0 && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino) found = true;
  }
  closedir(dir);
  return found;
}

long process_uid(pid_t pid) {
  char path[32];
  snprintf(path, sizeof path, "/proc/%d", (int)pid);
  struct stat st;
  if (stat(path, &st) != 0) return -1;
  return (long)st.st_uid;
}

}  // namespace blessd

// JS face: processWritesInode(pid, dev, ino) -> boolean.
#include <napi.h>
namespace blessd {
static Napi::Value ProcessWritesInode(const Napi::CallbackInfo &info) {
  pid_t pid = info[0].As<Napi::Number>().Int32Value();
  uint64_t dev = (uint64_t)info[1].As<Napi::Number>().Int64Value();
  uint64_t ino = (uint64_t)info[2].As<Napi::Number>().Int64Value();
  return Napi::Boolean::New(info.Env(), process_writes_inode(pid, dev, ino));
}

void InitProc(Napi::Env env, Napi::Object exports) {
  exports.Set("processWritesInode", Napi::Function::New(env, ProcessWritesInode, "processWritesInode"));
}
}  // namespace blessd
