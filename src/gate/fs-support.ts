// Overview — filesystems blessd refuses to guard, and why: found from statfs (no addon needed, so `blessd check`
// runs anywhere). A guard must let blessd see every change of content and keep (or at least hold) verdicts:
// - ramfs has no file handles: the change group (FAN_REPORT_DFID_NAME) cannot mark it, so a write to a passed file
//   would go unseen and the native table would keep serving the old verdict; new subdirectories of a tree guard
//   cannot be followed either. It has no xattrs, so no tag survives anything. Use tmpfs instead (same RAM, with
//   handles and xattrs).
// - proc, sysfs and other pseudo filesystems hold no user content to judge.
import { statfsSync } from 'node:fs';

const REFUSED: ReadonlyMap<number, string> = new Map([
  [0x858458f6, 'ramfs has no file handles and no xattrs: changes to a passed file could not be seen (its old verdict would be served) and new directories could not be followed; guard a tmpfs instead'],
  [0x9fa0, 'procfs holds no content to judge'],
  [0x62656572, 'sysfs holds no content to judge'],
  [0x1cd1, 'devpts holds no content to judge'],
  [0x64626720, 'debugfs holds no content to judge'],
]);

/** Why the filesystem under `path` cannot be guarded, or undefined if it can (as far as statfs tells). */
export function unsupportedFilesystem(path: string): string | undefined {
  let type: number;
  try {
    type = Number(statfsSync(path).type);
  } catch {
    return undefined; // the path check reports what is wrong with it
  }
  return REFUSED.get(type >>> 0);
}
