// fanotify constants newer than Debian 12's <linux/fanotify.h> (values from the kernel's uapi header, v6.14+).
#pragma once
#include <sys/fanotify.h>
#include <linux/fanotify.h>
#include <cstdint>

#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000ULL
#endif
#ifndef FAN_RENAME
#define FAN_RENAME 0x10000000
#endif
#ifndef FAN_MARK_EVICTABLE
#define FAN_MARK_EVICTABLE 0x00000200
#endif
#ifndef FAN_MARK_IGNORE
#define FAN_MARK_IGNORE 0x00000400
#endif
#ifndef FAN_REPORT_TARGET_FID
#define FAN_REPORT_TARGET_FID 0x00001000
#endif
#ifndef FAN_REPORT_DFID_NAME_TARGET
#define FAN_REPORT_DFID_NAME_TARGET (FAN_REPORT_DFID_NAME | FAN_REPORT_FID | FAN_REPORT_TARGET_FID)
#endif
#ifndef FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
#define FAN_EVENT_INFO_TYPE_OLD_DFID_NAME 10
#define FAN_EVENT_INFO_TYPE_NEW_DFID_NAME 12
#endif
#ifndef FAN_EVENT_INFO_TYPE_RANGE
#define FAN_EVENT_INFO_TYPE_RANGE 6
#endif
#ifndef FAN_ERRNO_BITS
#define FAN_ERRNO_BITS 8
#define FAN_ERRNO_SHIFT (32 - FAN_ERRNO_BITS)
#define FAN_ERRNO_MASK ((1 << FAN_ERRNO_BITS) - 1)
#define FAN_DENY_ERRNO(err) (FAN_DENY | ((((__u32)(err)) & FAN_ERRNO_MASK) << FAN_ERRNO_SHIFT))
#endif

namespace blessd {

struct RangeInfo {
  struct fanotify_event_info_header hdr;
  uint32_t pad;
  uint64_t offset;
  uint64_t count;
};

// What a read-mode guard asks of the gate group: the read/mmap and exec wait, and nothing else — one blocking event
// per cold access (an open would be a second one, costing the machine as much again: docs/kernel.md). What the open
// event gave us is kept where it is needed, per inode or per filesystem: a denied inode's own mark asks for its opens
// (kDenyOpenMask), so that a known-bad file is still refused at open; a filesystem with tree guards asks for every
// open as the checkpoint where a link or move into a tree is caught (trees.cc).
constexpr uint64_t kReadModeMask = FAN_PRE_ACCESS | FAN_OPEN_EXEC_PERM;
// The inode mark of a denied inode on a read-mode filesystem (not evictable: a deny must not go with the inode
// cache; removed when the verdict goes — forget, dirty, bless).
constexpr uint64_t kDenyOpenMask = FAN_OPEN_PERM;
// Open mode, where the filesystem has no pre-content events or the guard asks for it: the open itself waits.
constexpr uint64_t kOpenModeMask = FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM;
// The bit every inode mark of the gate group keeps in its own mask, so that the mark is never destroyed while the
// inode may be accessed: a permission event that races the destruction of a mark it iterates is let through by the
// kernel without reaching us (fsnotify_prepare_user_wait fails, and fanotify "lets the operation pass"; measured in
// docs/kernel.md, "Marks are never destroyed"). Removing ignore or deny bits then leaves the mark in place. Every
// guard's own mark asks for exec already (kReadModeMask, kOpenModeMask), so this asks nothing new.
constexpr uint64_t kKeepMask = FAN_OPEN_EXEC_PERM;
// The verdict cache's ignore mask: everything either mode could ask about this inode.
constexpr uint64_t kIgnoreMask = FAN_OPEN | FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS;
// An inode outside every tree guard: silent except at open, where a link or move into a tree is caught (trees.cc).
constexpr uint64_t kOutsideIgnoreMask = FAN_OPEN | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS;
constexpr uint64_t kPermMask = FAN_OPEN_PERM | FAN_OPEN_EXEC_PERM | FAN_PRE_ACCESS | FAN_ACCESS_PERM;
// The change group: content changes, and what moves or removes a file. Not FAN_ATTRIB: every tag write raises one
// (ours too: fsnotify knows no listener's own pid), so it would cost a record, and a wake-up of the reader thread,
// per tag written — for nothing JS uses (only modify and close-write are content news to it).
constexpr uint64_t kChangeMaskFs = FAN_MODIFY | FAN_CLOSE_WRITE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_RENAME |
                                   FAN_DELETE_SELF | FAN_CREATE | FAN_DELETE | FAN_ONDIR;
// What a tree guard adds to its filesystem's change mark: an inode outside every tree that is linked (its link
// count moves) must lose the ignore mark it was let through with (trees.cc, TreeChangeLocked).
constexpr uint64_t kTreeChangeMask = FAN_ATTRIB;
// Mount marks cannot carry directory-entry or self events (docs/kernel.md, exp4).
constexpr uint64_t kChangeMaskMount = FAN_MODIFY | FAN_CLOSE_WRITE;

}  // namespace blessd
