// Overview — what a non-root subscriber may learn: a notice names a file by path (and handle), so it goes only to
// subscribers whose uid could find that path themselves — search (x) on every directory above the file, and read
// (r) on its own directory (list it). Others do not get the notice at all (counted as withheld).
//
// Checked from stat() of each ancestor against the subscriber's uid, gid and supplementary groups (read from
// /proc/<pid>/status when it subscribes), with each directory's answer cached for a second: a burst of notices in
// one directory costs one map lookup each. A directory with a POSIX ACL counts for its owner only, as an ACL may
// deny what the mode bits would allow. Root sees everything.
import { lstatSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { native } from '../gate/addon.js';

export interface Viewer {
  uid: number;
  gids: ReadonlySet<number>;
  /** Cache key: uid and groups. */
  key: string;
}

const TTL_MS = 1000;
const MAX_CACHED = 10_000;
const X = 1;
const R = 4;

/** The viewer behind a peer: its uid, primary gid and supplementary groups now. */
export function viewerOf(peer: { pid: number; uid: number; gid: number }): Viewer {
  const gids = new Set<number>([peer.gid]);
  try {
    const status = readFileSync(`/proc/${peer.pid}/status`, 'latin1');
    const groups = /^Groups:\s*(.*)$/m.exec(status)?.[1] ?? '';
    for (const g of groups.trim().split(/\s+/)) if (/^\d+$/.test(g)) gids.add(Number(g));
  } catch {
    /* gone: its primary group only */
  }
  return { uid: peer.uid, gids, key: `${peer.uid}:${[...gids].sort((a, b) => a - b).join(',')}` };
}

export class Visibility {
  private readonly dirs = new Map<string, { ok: boolean; until: number }>(); // viewer key + '\0' + dir + need

  /** Whether `viewer` could reach and list the directory of `path` (an absolute, canonical path). */
  canSee(viewer: Viewer, path: string): boolean {
    if (viewer.uid === 0) return true;
    const parent = dirname(path.endsWith(' (deleted)') ? path.slice(0, -' (deleted)'.length) : path);
    if (!this.allowed(viewer, parent, R | X)) return false;
    for (let d = dirname(parent); ; d = dirname(d)) {
      if (!this.allowed(viewer, d, X)) return false;
      if (d === '/') return true;
    }
  }

  private allowed(viewer: Viewer, dir: string, need: number): boolean {
    const key = `${viewer.key}\0${dir}\0${need}`;
    const now = Date.now();
    const hit = this.dirs.get(key);
    if (hit && hit.until > now) return hit.ok;
    const ok = check(viewer, dir, need);
    if (this.dirs.size >= MAX_CACHED) this.dirs.clear();
    this.dirs.set(key, { ok, until: now + TTL_MS });
    return ok;
  }
}

function check(viewer: Viewer, dir: string, need: number): boolean {
  let st;
  try {
    st = lstatSync(dir);
  } catch {
    return false; // gone: nothing to see
  }
  if (!st.isDirectory()) return false;
  if (st.uid === viewer.uid) return ((st.mode >> 6) & need) === need;
  if (hasAcl(dir)) return false;
  const bits = viewer.gids.has(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & need) === need;
}

function hasAcl(dir: string): boolean {
  try {
    return native.getXattr(dir, 'system.posix_acl_access') !== null;
  } catch {
    return false; // no ACL support on this filesystem
  }
}
