// Body signatures with a fixed offset: compared byte for byte as the stream passes their window, never searched.
// Each one is decided (match or not) as soon as its last byte has gone by; bytes may arrive in any chunk sizes.
import type { BodyHit } from './aho-corasick.js';

interface Pending {
  index: number;
  offset: number;
  pattern: Buffer;
  /** Bytes of the pattern compared so far (all equal). */
  done: number;
}

export class AnchoredStream {
  private pending: Pending[];
  private position = 0;

  constructor(patterns: readonly { index: number; offset: number; pattern: Buffer }[]) {
    this.pending = patterns.map((p) => ({ ...p, done: 0 })).sort((a, b) => a.offset - b.offset);
  }

  /** Feed the next chunk; returns the match that ends first in it, or null. */
  push(chunk: Uint8Array): BodyHit | null {
    const start = this.position;
    const end = start + chunk.length;
    this.position = end;
    let best: BodyHit | null = null;
    const still: Pending[] = [];
    for (const p of this.pending) {
      if (p.offset >= end) {
        still.push(p); // sorted by offset: the rest are later, but keep them in order
        continue;
      }
      const from = p.offset + p.done; // next stream offset to compare
      const upto = Math.min(end, p.offset + p.pattern.length);
      let equal = true;
      for (let at = from; at < upto; at++) {
        if (chunk[at - start] !== p.pattern[at - p.offset]) {
          equal = false;
          break;
        }
      }
      if (!equal) continue; // decided: no match, dropped
      p.done = upto - p.offset;
      if (p.done === p.pattern.length) {
        const hitEnd = p.offset + p.pattern.length;
        if (!best || hitEnd < best.end) best = { pattern: p.index, end: hitEnd };
      } else {
        still.push(p);
      }
    }
    this.pending = still;
    return best;
  }
}
