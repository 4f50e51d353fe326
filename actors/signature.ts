// The signature actor: ClamAV-compatible hand-written databases (.hdb, .hsb, .ndb with literal hex), matched in
// ONE streaming pass over the file: every body pattern at once (Aho–Corasick), fixed-offset patterns as the stream
// passes them, and MD5 / SHA-256 for the hash signatures computed from the same chunks.
//
// options: databases: string[]  files or directories (every *.hdb, *.hsb, *.ndb in a directory)
//          chunkSize?: number    read size in bytes (default 1 MiB)
import { createHash, type Hash } from 'node:crypto';
import type { ActorInstance, ActorModule, ScanFile } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { noOtherKeys, optionsObject, positiveInteger, stringArray } from './common/options.js';
import { AhoCorasick, type BodyHit } from './signature/aho-corasick.js';
import { AnchoredStream } from './signature/anchored.js';
import { loadDatabases, type HashSignature } from './signature/database.js';

const NAME = 'signature';
const DEFAULT_CHUNK = 1 << 20;

function firstHit(a: BodyHit | null, b: BodyHit | null): BodyHit | null {
  if (!a) return b;
  if (!b) return a;
  return b.end < a.end ? b : a;
}

const signature: ActorModule = {
  manifest: { name: NAME, version: '1.0.0' },

  async init(raw): Promise<ActorInstance> {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, ['databases', 'chunkSize']);
    const databases = stringArray(NAME, options, 'databases', 'paths', true)!;
    const chunkSize = positiveInteger(NAME, options, 'chunkSize', DEFAULT_CHUNK);
    const db = await loadDatabases(databases);

    const floating = db.bodies.filter((b) => b.offset === null);
    const anchored = db.bodies.filter((b) => b.offset !== null);
    const automaton = floating.length > 0 ? new AhoCorasick(floating.map((b) => b.pattern)) : null;
    // Hash signatures by "hash:size" and "hash:*", so a lookup is two map probes.
    const hashIndex = new Map<string, HashSignature>();
    for (const h of db.hashes) {
      const key = `${h.kind}:${h.hash}:${h.size ?? '*'}`;
      if (!hashIndex.has(key)) hashIndex.set(key, h);
    }
    const wantMd5 = db.hashes.some((h) => h.kind === 'hdb');
    const wantSha256 = db.hashes.some((h) => h.kind === 'hsb');

    const lookup = (kind: 'hdb' | 'hsb', digest: string, size: number) =>
      hashIndex.get(`${kind}:${digest}:${size}`) ?? hashIndex.get(`${kind}:${digest}:*`);

    return {
      generation: db.generation,
      warnings: db.warnings,
      async scan(file: ScanFile): Promise<Answer> {
        const body = automaton?.stream();
        const fixed = anchored.length > 0 ? new AnchoredStream(anchored.map((b, index) => ({ index, offset: b.offset!, pattern: b.pattern }))) : null;
        const md5: Hash | null = wantMd5 ? createHash('md5') : null;
        const sha256: Hash | null = wantSha256 ? createHash('sha256') : null;
        let size = 0;
        for await (const chunk of file.chunks(chunkSize)) {
          size += chunk.length;
          md5?.update(chunk);
          sha256?.update(chunk);
          const floatHit = body?.push(chunk) ?? null;
          const fixedHit = fixed?.push(chunk) ?? null;
          const hit = firstHit(floatHit, fixedHit);
          // A body match decides: stop reading, the hashes no longer matter.
          if (hit) {
            const sig = hit === floatHit ? floating[hit.pattern]! : anchored[hit.pattern]!;
            return { answer: 'deny', reason: sig.name };
          }
        }
        const byMd5 = md5 ? lookup('hdb', md5.digest('hex'), size) : undefined;
        const bySha = sha256 ? lookup('hsb', sha256.digest('hex'), size) : undefined;
        const sig = byMd5 ?? bySha;
        return sig ? { answer: 'deny', reason: sig.name } : { answer: 'ok' };
      },
    };
  },
};

export default signature;
