// The file's stamp: what a tag is bound to. A tag whose stamp differs from the file's is worth nothing.
// (ino, inode generation) names the inode even across inode-number reuse; (size, mtime in ns) says "unchanged
// since" — as far as mtime can say it: a writer may set mtime back (utimensat). ctime mode (ctime.ts, the default)
// and content mode catch that.
import { native } from '../gate/addon.js';
import type { JudgedStamp } from '../gate/types.js';
import { TagError, messageOf } from './errors.js';

export interface Stamp {
  ino: bigint;
  /** FS_IOC_GETVERSION; 0 where the filesystem has none (tmpfs). */
  igen: number;
  size: bigint;
  mtimeNs: bigint;
}

/** Stamp of an open file. fstat is a cheap syscall; synchronous on purpose (no await between stat and use). */
export function readStamp(fd: number): Stamp {
  return readStampAndCtime(fd).stamp;
}

/**
 * The stamp and the inode's ctime (ns), from one native call (fstat + FS_IOC_GETVERSION, native/tags/stamp.cc):
 * ctime is checked apart from the stamp (ctime.ts says why). Native because fstatSync builds a Stats object per
 * call and this runs several times per scanned file (the worker profile in docs/bench.md).
 */
export function readStampAndCtime(fd: number): { stamp: Stamp; ctimeNs: bigint } {
  try {
    native.tagStamp(fd, slots);
  } catch (err) {
    throw new TagError('TAG_XATTR_IO', `fstat of fd ${fd}: ${messageOf(err)}`, err);
  }
  // ino as unsigned (st_ino is; overlayfs sets high bits). igen 0 where the filesystem keeps no inode generation (ENOTTY and friends): the other fields still bind the tag.
  return { stamp: { ino: BigInt.asUintN(64, slots[0]!), igen: Number(slots[1]!), size: slots[2]!, mtimeNs: slots[3]! }, ctimeNs: slots[4]! };
}

/** What a bless is checked against (native/fanotify/answers.cc): size, mtime and ctime, from one native call. */
export function judgedStampOf(fd: number): JudgedStamp {
  const { stamp, ctimeNs } = readStampAndCtime(fd);
  return { size: stamp.size, mtimeNs: stamp.mtimeNs, ctimeNs };
}

/** Reused by every call of this thread (synchronous, so no two calls share it at once). */
const slots = new BigInt64Array(5);

export function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.ino === b.ino && a.igen === b.igen && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

/** For messages and the CLI: which fields differ. */
export function stampDiff(tag: Stamp, file: Stamp): string[] {
  const out: string[] = [];
  if (tag.ino !== file.ino) out.push(`ino ${tag.ino} != ${file.ino}`);
  if (tag.igen !== file.igen) out.push(`igen ${tag.igen} != ${file.igen}`);
  if (tag.size !== file.size) out.push(`size ${tag.size} != ${file.size}`);
  if (tag.mtimeNs !== file.mtimeNs) out.push(`mtime ${tag.mtimeNs} != ${file.mtimeNs}`);
  return out;
}
