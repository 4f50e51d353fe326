// The JavaScript Aho–Corasick matcher the signature actor used before Vectorscan (literal patterns only, at most
// 65535 trie states), kept here as the alternative bench/engine measures against.
// Aho–Corasick over bytes, compiled to a dense DFA: one table lookup per input byte, whatever the number of
// patterns. The automaton state is carried from one chunk to the next, so a pattern split across a chunk border
// matches like any other.
//
// Memory: the table holds 256 entries per trie state in a Uint16Array (≤ 32 MiB). Hand-written databases are far
// below that; a database too large for it is refused at load with a clear error instead of eating the worker.
import { ActorError } from '../../actors/common/errors.js';

export const MAX_STATES = 0xffff;

export interface BodyHit {
  /** Index into the patterns given to the constructor. */
  pattern: number;
  /** Offset just past the last byte of the match, from the start of the stream. */
  end: number;
}

export class AhoCorasick {
  private readonly table: Uint16Array;
  /** For each state: a pattern that ends here (own or through the failure chain), else -1. */
  private readonly hit: Int32Array;
  private readonly lengths: number[];

  constructor(patterns: readonly Buffer[]) {
    this.lengths = patterns.map((p) => p.length);
    // 1. The trie, with sparse children while building.
    const children: Map<number, number>[] = [new Map()];
    const own: number[] = [-1];
    patterns.forEach((p, index) => {
      let s = 0;
      for (const byte of p) {
        let next = children[s]!.get(byte);
        if (next === undefined) {
          next = children.length;
          if (next > MAX_STATES) {
            throw new ActorError('ACTOR_DATABASE', `signature: body signatures too large for the built-in matcher (more than ${MAX_STATES} trie states); split them or use the exec actor with a full engine`);
          }
          children.push(new Map());
          own.push(-1);
          children[s]!.set(byte, next);
        }
        s = next;
      }
      if (own[s] === -1) own[s] = index;
    });
    // 2. Breadth-first: failure links and the dense transition table (a missing edge follows the failure link,
    //    which, being shallower, already has its full row).
    const n = children.length;
    const table = new Uint16Array(n * 256);
    const hit = new Int32Array(n).fill(-1);
    const fail = new Uint32Array(n);
    const queue: number[] = [];
    for (const [byte, next] of children[0]!) {
      table[byte] = next;
      queue.push(next);
    }
    hit[0] = own[0]!;
    for (let q = 0; q < queue.length; q++) {
      const s = queue[q]!;
      hit[s] = own[s]! !== -1 ? own[s]! : hit[fail[s]!]!;
      const row = s * 256;
      const failRow = fail[s]! * 256;
      for (let byte = 0; byte < 256; byte++) {
        const next = children[s]!.get(byte);
        if (next === undefined) {
          table[row + byte] = table[failRow + byte]!;
        } else {
          table[row + byte] = next;
          fail[next] = table[failRow + byte]!;
          queue.push(next);
        }
      }
    }
    this.table = table;
    this.hit = hit;
  }

  get states(): number {
    return this.hit.length;
  }

  /** A fresh matching state for one stream. */
  stream(): AhoCorasickStream {
    return new AhoCorasickStream(this.table, this.hit);
  }

  patternLength(index: number): number {
    return this.lengths[index]!;
  }
}

export class AhoCorasickStream {
  private state = 0;
  private position = 0;

  constructor(
    private readonly table: Uint16Array,
    private readonly hit: Int32Array,
  ) {}

  /** Feed the next chunk; returns the first match that ends in it, or null. */
  push(chunk: Uint8Array): BodyHit | null {
    // Hot loop: locals only, one lookup and one test per byte.
    const table = this.table;
    const hit = this.hit;
    let s = this.state;
    for (let i = 0; i < chunk.length; i++) {
      s = table[(s << 8) | chunk[i]!]!;
      if (hit[s]! >= 0) {
        this.state = s;
        const end = this.position + i + 1;
        this.position += chunk.length;
        return { pattern: hit[s]!, end };
      }
    }
    this.state = s;
    this.position += chunk.length;
    return null;
  }
}
