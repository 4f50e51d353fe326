// A mixed tree like a file server's: mostly small files, some large ones, in directories of PER_DIR files.
// File i's size follows from its index (the first ones are the small ones), so a client picking a uniform random
// index sees the mix.
import { makeFiles, type Tools } from './native.js';

const KiB = 1024;
const MiB = 1024 * KiB;

export const PER_DIR = 500;

export const MIX = [
  { share: 0.7, size: 4 * KiB },
  { share: 0.2, size: 64 * KiB },
  { share: 0.09, size: MiB },
  { share: 0.01, size: 8 * MiB },
];

export function mixBytes(files: number): number {
  return MIX.reduce((a, m) => a + Math.round(files * m.share) * m.size, 0);
}

export function describeMix(): string {
  return MIX.map((m) => `${Math.round(m.share * 100)}% ${m.size >= MiB ? `${m.size / MiB} MiB` : `${m.size / KiB} KiB`}`).join(', ');
}

/** Files 0..files-1 under dir; returns the count actually made (rounding). */
export async function makeMixedTree(tools: Tools, dir: string, files: number): Promise<number> {
  let start = 0;
  for (let i = 0; i < MIX.length; i++) {
    const n = i === MIX.length - 1 ? files - start : Math.round(files * MIX[i].share);
    if (n <= 0) continue;
    await makeFiles(tools, { dir, start, count: n, size: MIX[i].size, perDir: PER_DIR });
    start += n;
  }
  return start;
}
