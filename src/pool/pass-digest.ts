// A scan task's content pass (content-pass.ts: the signature actor) asked for its digest (ScanTask.digest): the
// SHA-256 its one read of the file gives anyway, returned with the result — with the stamp and ctime read right
// before and after the pass: the stamp must be the same (else the digest names no content, and none is returned);
// a ctime that moved is said (ctimeMovedFrom), for the main thread to judge against its own tag writes.
// Other actors scan as without it. Never throws (as scanWith).
import { readStampAndCtime, sameStamp } from '../tags/stamp.js';
import type { ActorInstance } from './actor.js';
import { scanWith } from './actor-scan.js';
import { isContentPass, type DigestSink } from './content-pass.js';
import type { ScanFileInit } from './scan-file.js';
import type { ScanResult, WorkerFailure } from './tasks.js';

function stampIfAny(fd: number): ReturnType<typeof readStampAndCtime> | undefined {
  try {
    return readStampAndCtime(fd);
  } catch {
    return undefined;
  }
}

export async function scanWithDigest(name: string, instance: ActorInstance, init: ScanFileInit): Promise<ScanResult | WorkerFailure> {
  if (!isContentPass(instance)) return scanWith(name, instance, init);
  const sink: DigestSink = { sha256: Buffer.allocUnsafe(32), digested: false };
  const before = stampIfAny(init.fd);
  const r = await scanWith(name, instance, init, sink);
  if ('error' in r || !before || !sink.digested) return r;
  const after = stampIfAny(init.fd);
  if (after && sameStamp(before.stamp, after.stamp) && Number(after.stamp.size) === init.size) {
    // A moved ctime may be our own lease of another scanner of the file, written meanwhile: the main thread judges.
    r.digest = { sha256: sink.sha256.toString('hex'), stamp: after.stamp, ctimeNs: after.ctimeNs, ...(before.ctimeNs !== after.ctimeNs && { ctimeMovedFrom: before.ctimeNs }) };
  }
  return r;
}
