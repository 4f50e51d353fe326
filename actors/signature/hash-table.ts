// Hash signatures kept compact, for a million of them: digests packed in one buffer, sizes in a Float64Array, an
// open-addressing index of Uint32 slots keyed by the digest's first four bytes (digests are uniformly random).
// One probe sequence per lookup whatever the number of signatures. ~60 bytes per signature plus its name.
export type HashAlgo = 'md5' | 'sha1' | 'sha256';

export const DIGEST_BYTES: Record<HashAlgo, number> = { md5: 16, sha1: 20, sha256: 32 };
export const ALGO_BY_HEX_LENGTH: Record<number, HashAlgo> = { 32: 'md5', 40: 'sha1', 64: 'sha256' };

export interface HashHit {
  name: string;
}

export class HashTable {
  readonly bytes: number;
  private digests: Buffer;
  private sizes = new Float64Array(1024);
  /** Names packed as latin1 bytes, with start offsets (a million V8 strings would cost ~40 MB more). */
  private nameBytes: Buffer = Buffer.alloc(16 * 1024);
  private nameEnds = new Uint32Array(1024);
  private n = 0;
  private nameLength = 0;
  private slots = new Uint32Array(0);
  private mask = 0;
  /** Sizes that some signature names; a file of another size cannot match (unless `anySize`). */
  readonly sizeSet = new Set<number>();
  anySize = false;

  constructor(readonly algo: HashAlgo) {
    this.bytes = DIGEST_BYTES[algo];
    this.digests = Buffer.alloc(this.bytes * 1024);
  }

  get count(): number {
    return this.n;
  }

  /** Make room for `more` signatures at once (a file's line count), so a million do not grow by doubling. */
  reserve(more: number): void {
    const want = this.n + more;
    if (want * this.bytes > this.digests.length) this.digests = grow(this.digests, want * this.bytes);
    if (want > this.sizes.length) {
      const sizes = new Float64Array(want);
      sizes.set(this.sizes.subarray(0, this.n));
      this.sizes = sizes;
      const ends = new Uint32Array(want);
      ends.set(this.nameEnds.subarray(0, this.n));
      this.nameEnds = ends;
    }
  }

  /** The digest's hex is at `hex[hexStart..]` (already checked); the name is `line[nameStart, nameEnd)`. */
  add(hex: Buffer, hexStart: number, size: number | null, line: Buffer, nameStart: number, nameEnd: number): void {
    const i = this.n;
    if (i >= this.sizes.length) this.reserve(Math.max(1024, i));
    const at = i * this.bytes;
    for (let k = 0; k < this.bytes; k++) this.digests[at + k] = (nibble(hex[hexStart + 2 * k]!) << 4) | nibble(hex[hexStart + 2 * k + 1]!);
    this.sizes[i] = size ?? -1;
    const len = nameEnd - nameStart;
    if (this.nameLength + len > this.nameBytes.length) this.nameBytes = grow(this.nameBytes, Math.max(this.nameBytes.length * 2, this.nameLength + len));
    line.copy(this.nameBytes, this.nameLength, nameStart, nameEnd);
    this.nameLength += len;
    this.nameEnds[i] = this.nameLength;
    this.n++;
    if (size === null) this.anySize = true;
    else this.sizeSet.add(size);
  }

  private name(i: number): string {
    return this.nameBytes.toString('latin1', i === 0 ? 0 : this.nameEnds[i - 1]!, this.nameEnds[i]!);
  }

  /** Build the index; call once after the last add(). */
  seal(): void {
    const n = this.n;
    let cap = 16;
    while (cap < n * 2) cap *= 2;
    this.slots = new Uint32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < n; i++) {
      let s = this.digests.readUInt32LE(i * this.bytes) & this.mask;
      while (this.slots[s] !== 0) s = (s + 1) & this.mask;
      this.slots[s] = i + 1;
    }
    // Copies, not views: the spare room of the growth would otherwise stay allocated behind them.
    this.digests = Buffer.from(this.digests.subarray(0, n * this.bytes));
    this.nameBytes = Buffer.from(this.nameBytes.subarray(0, this.nameLength));
  }

  /** Would a file of this size need this digest at all? */
  wants(size: number): boolean {
    return this.n > 0 && (this.anySize || this.sizeSet.has(size));
  }

  /** The first signature with this digest and size (or any size) whose name `skip` does not reject. */
  lookup(digest: Buffer, size: number, skip?: (name: string) => boolean): HashHit | null {
    if (this.n === 0) return null;
    let s = digest.readUInt32LE(0) & this.mask;
    for (let slot = this.slots[s]!; slot !== 0; s = (s + 1) & this.mask, slot = this.slots[s]!) {
      const i = slot - 1;
      const at = i * this.bytes;
      let equal = true;
      for (let k = 0; k < this.bytes; k++) {
        if (this.digests[at + k] !== digest[k]) {
          equal = false;
          break;
        }
      }
      if (!equal) continue;
      const want = this.sizes[i]!;
      if (want !== -1 && want !== size) continue;
      const name = this.name(i);
      if (skip?.(name)) continue;
      return { name };
    }
    return null;
  }
}

function grow(b: Buffer, atLeast: number): Buffer {
  const grown = Buffer.alloc(atLeast);
  b.copy(grown);
  return grown;
}

function nibble(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}
