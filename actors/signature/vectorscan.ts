// The one place that loads the matcher addon (native/match/vectorscan.cc, linked against Debian's libvectorscan).
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

export interface MatchAddon {
  BodyMatcher: new (expressions: string[], flags: Uint32Array, checks: Float64Array) => BodyMatcher;
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
