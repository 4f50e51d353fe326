// The one place that loads the matcher addon (native/match/: the Vectorscan matcher, linked against Debian's
// libvectorscan, and the scan pass that reads a file once for it and for the digests).
// Why Vectorscan: thousands of ClamAV body patterns (wildcards, gaps, alternatives) in one streaming pass at
// hundreds of MB/s per core; a JavaScript automaton does one table lookup per byte and its table grows with every
// pattern (docs/signatures.md, "Why Vectorscan", has the measurements).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BodyMatcher {
  /** Start a file: its size, entry point file offset (-1: none) and ClamAV target type. */
  begin(size: number, entry: number, type: number): void;
  /** Feed the next chunk: the index of the first pattern that matched and passed its checks, or -1. */
  push(chunk: Uint8Array): number;
  /** End of the file (patterns that need it report here); closes the stream. */
  end(): number;
  /** Bytes of the compiled database. */
  size(): number;
}

/** The one-call-per-file scan pass (native/match/pass.cc); actors/signature/engine.ts is its only user. */
export interface ScanPass {
  /** Read the first chunk into the buffer (for the file-type read); the bytes read. run() starts from them. */
  head(fd: number, size: number): number;
  /** The whole pass; returns the hit kind (PASS_STATE has the index and the bytes read), digests in the buffer. */
  run(fd: number, size: number, digestMask: number, flags: number, entry: number, type: number, headFilled: number): number;
}

export interface MatchAddon {
  BodyMatcher: new (expressions: string[], flags: Uint32Array, checks: Float64Array) => BodyMatcher;
  ScanPass: new (
    buffer: Buffer,
    digests: Buffer,
    state: Float64Array,
    matcher: BodyMatcher | null,
    anchoredAt: Float64Array,
    anchoredEnds: Uint32Array,
    anchoredBytes: Buffer,
  ) => ScanPass;
  FLAG_DOTALL: number;
  FLAG_SINGLEMATCH: number;
  FLAG_SOM_LEFTMOST: number;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('blessd: cannot find the package root');
    dir = up;
  }
  return dir;
}

const path = join(packageRoot(), 'build', 'Release', 'blessd_match.node');
if (!existsSync(path)) throw new Error(`signature: matcher addon missing at ${path}; run \`npm ci\` (needs libvectorscan-dev)`);
export const match: MatchAddon = createRequire(import.meta.url)(path);

/** Layout of the scan pass's results, as in native/match/pass.cc and native/digest/digests.h. */
export const PASS = {
  state: { hitKind: 0, hitIndex: 1, position: 2, slots: 3 },
  hit: { none: 0, anchored: 1, streamed: 2 },
  flags: { keepReadingAfterHit: 1 },
  digestBit: { md5: 1, sha1: 2, sha256: 4 },
  digestAt: { md5: [0, 16], sha1: [16, 36], sha256: [36, 68] },
  digestBytes: 68,
} as const;
