// What /proc says about one task that is blocked in a fanotify permission wait. Each call is a fixed number of small
// reads of /proc/<tid>/..., whatever the task holds (its fd count does not matter): safe on the reader thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <sys/types.h>

namespace blessd {

// What the blocked syscall does to the inode the event is about. Only Write may pass unjudged.
enum class TaskAccess : uint8_t {
  Write,  // a write-family syscall on an fd open for writing on this very inode: it cannot read content
  Read,   // everything else — reads, mmap, sendfile/splice, execve, io_uring, a task we cannot read: waits
  SharedWriteMap,  // mmap(PROT_WRITE, MAP_SHARED) of this inode through a write fd: waits like a read, and its later
                   // stores change content with no event (docs/kernel.md, exp11)
  NotYet,  // the task has not fallen asleep in its syscall yet: ask again a moment later
};

// Classify the access of task `tid`, blocked on (dev, ino), from /proc/<tid>/syscall and /proc/<tid>/fdinfo/<fd>.
// A task that just queued its event may still be running on its way to sleep: the answer is then NotYet, and the
// caller asks again later (the reader thread goes on with other events meanwhile instead of sleeping on this one).
TaskAccess task_access(pid_t tid, uint64_t dev, uint64_t ino);

// The access mode (O_RDONLY, O_WRONLY or O_RDWR) an opener blocked in open()/openat()/creat() asks for, from the
// flags register; -1 when the task is in another syscall (execve, openat2 whose flags live in memory) or unreadable;
// kAccmodeNotYet when the task is still running (as for task_access).
constexpr int kAccmodeNotYet = -2;
int task_open_accmode(pid_t tid);

// Thread group id and real uid of a task, from /proc/<tid>/status, and with `name` its name (comm) from the same
// read. False if the task is gone.
bool task_identity(pid_t tid, pid_t &tgid, uint32_t &uid, char *name = nullptr, size_t name_size = 0);

// Effective uid of a live task (owner of /proc/<tid>), or -1.
long task_uid(pid_t tid);

// Whether `tid` is a thread of process `tgid` (tgkill with signal 0: one syscall, nothing sent).
bool task_in_group(pid_t tgid, pid_t tid);

}  // namespace blessd
