// Overview — "is this accessor the holder of a live lease on this file?": the one question another daemon's scan
// read raises here. Two blessd on one kernel guarding one filesystem are both asked about every access, including
// each other's scan reads through an fd of their own (docs/kernel.md, "Two daemons on one filesystem"): if the
// daemon waiting for a lease held the holder's scan read, each would wait on the other until a deadline. A read by
// the lease's own holder is that scan, so it passes (docs/sharedfs.md says why this is safe).
// What counts: a scanning tag of our namespace whose MAC verifies with our key (only a daemon with the shared key
// can write one, and only root can write trusted.* at all), still live, naming this very process (holder.ts:
// boot id, pid, start time). It never passes anything else, and passing caches nothing: no verdict, no ignore mark.
import { isHolderProcess } from './holder.js';
import type { TagStore } from './store.js';

/** What `blessd run` names its main thread (so /proc/<pid>/comm, ps and top show it): how a peer is told apart
 * cheaply before its lease is read. Anyone may take the name; it lets nothing pass by itself. */
export const DAEMON_NAME = 'blessd';

/** Whether process `pid` holds a live, MAC-verified scanning lease on the file behind `fd`. */
export function readsOwnLease(store: TagStore, fd: number, pid: number): boolean {
  for (const tag of store.readSync(fd, {}).tags) {
    if (tag.judgement === 'scanning-live' && tag.value?.kind === 'scanning' && isHolderProcess(tag.value.holder, pid)) return true;
  }
  return false;
}
