// The file's stamp: what a tag is bound to. A tag whose stamp differs from the file's is worth nothing.
// (ino, inode generation) names the inode even across inode-number reuse; (size, mtime in ns) says "unchanged
// since" — as far as mtime can say it: a writer may set mtime back (utimensat). ctime mode (ctime.ts, the default)
// and content mode catch that.
import { fstatSync } from 'node:fs';
import { native } from '../gate/addon.js';
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

/** The stamp and the inode's ctime (ns), from one fstat: ctime is checked apart from the stamp (ctime.ts says why). */
export function readStampAndCtime(fd: number): { stamp: Stamp; ctimeNs: bigint } {
  let st;
  try {
    st = fstatSync(fd, { bigint: true });
  } catch (err) {
    throw new TagError('TAG_XATTR_IO', `fstat of fd ${fd}: ${messageOf(err)}`, err);
  }
  let igen: number | null = null;
  try {
    igen = native.inodeGeneration(fd);
  } catch {
    // ENOTTY and friends: the filesystem keeps no inode generation. The other fields still bind the tag.
    igen = null;
  }
  return { stamp: { ino: st.ino, igen: igen ?? 0, size: st.size, mtimeNs: st.mtimeNs }, ctimeNs: st.ctimeNs };
}

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
