// The content digest the fleet keys verdicts by: SHA-256 of the file up to the size the daemon stamped (the size
// the scans read up to), read through the daemon's descriptor with pread into one reused buffer. Synchronous on
// purpose: it runs in a pool worker (never the main thread), and no await between the two stamp reads around it
// lets anything of ours interleave. Returns undefined if the file changed while it was read (its stamp or ctime
// moved): that digest names no content, and the file is judged by scanning. With the digest comes the stamp and
// ctime it describes: a scan that ends with the same ones read the same content (ctime cannot be set by a user,
// and since Linux 6.13 a change after a query of ctime always gets a new one: docs/kernel.md).
import { createHash } from 'node:crypto';
import { readSync } from 'node:fs';
import { readStampAndCtime, sameStamp, type Stamp } from '../tags/stamp.js';

const CHUNK = 1 << 20;
let buffer: Buffer | undefined;

export interface Digest {
  sha256: string;
  stamp: Stamp;
  ctimeNs: bigint;
}

export function contentDigest(fd: number, size: number): Digest | undefined {
  const before = readStampAndCtime(fd);
  if (Number(before.stamp.size) !== size) return undefined;
  buffer ??= Buffer.allocUnsafe(CHUNK);
  const hash = createHash('sha256');
  for (let position = 0; position < size; ) {
    const n = readSync(fd, buffer, 0, Math.min(CHUNK, size - position), position);
    if (n === 0) return undefined; // shrank
    hash.update(n === buffer.length ? buffer : buffer.subarray(0, n));
    position += n;
  }
  const after = readStampAndCtime(fd);
  if (!sameStamp(before.stamp, after.stamp) || before.ctimeNs !== after.ctimeNs) return undefined;
  return { sha256: hash.digest('hex'), stamp: after.stamp, ctimeNs: after.ctimeNs };
}

/**
 * Whether a digest taken earlier still names the file's content now: the same stamp, and a ctime that is the
 * digest's own or `ownCtimeNs`, the one read right after our own last tag write on the file (a write of ours
 * changes no content). Exactly that one, no slack: any change after that read moves ctime again (multigrain
 * timestamps, docs/kernel.md), however soon after our write it comes. Read errors: no (the caller then reads a
 * digest of its own, or publishes nothing).
 */
export function stillNames(fd: number, d: Digest, ownCtimeNs?: bigint): boolean {
  try {
    const now = readStampAndCtime(fd);
    if (!sameStamp(now.stamp, d.stamp)) return false;
    return now.ctimeNs === d.ctimeNs || now.ctimeNs === ownCtimeNs;
  } catch {
    return false;
  }
}
