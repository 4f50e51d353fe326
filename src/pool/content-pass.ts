// A scanner whose scan is one native pass over the content (the built-in signature actor: native/match/pass.cc)
// can hash that content in the same read: `scanDigesting` is its scan, also writing the SHA-256 of every byte up
// to the stamped size. The fleet keys shared verdicts by that digest (src/fleet/share.ts), so the file needs no
// read of its own for the key. Not part of Actor API v1 (src/pool/actor.ts): a built-in's extra, found by its
// shape on the loaded instance; actors of third parties keep the plain `scan`.
import type { Answer } from '../policy/answer.js';
import type { ActorInstance, ScanFile } from './actor.js';

export interface ContentPassInstance extends ActorInstance {
  /** `digested`: the pass read every byte up to `file.size` and `sha256` (32 bytes) holds their SHA-256. */
  scanDigesting(file: ScanFile, sha256: Buffer): Promise<{ answer: Answer; digested: boolean }>;
}

export function isContentPass(instance: ActorInstance): instance is ContentPassInstance {
  return typeof (instance as Partial<ContentPassInstance>).scanDigesting === 'function';
}

/** Where a digesting scan leaves the digest (scanWith fills it; judge-batch.ts hands it to the fleet). */
export interface DigestSink {
  sha256: Buffer;
  digested: boolean;
}
