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
  private sizes: number[] = [];
  private names: string[] = [];
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
    return this.names.length;
  }

  /** `hex` must already be checked (right length, hex digits). size null = any size. */
  add(hex: Buffer, hexStart: number, size: number | null, name: string): void {
    const i = this.names.length;
    if ((i + 1) * this.bytes > this.digests.length) {
      const grown = Buffer.alloc(this.digests.length * 2);
      this.digests.copy(grown);
      this.digests = grown;
    }
    const at = i * this.bytes;
    for (let k = 0; k < this.bytes; k++) this.digests[at + k] = (nibble(hex[hexStart + 2 * k]!) << 4) | nibble(hex[hexStart + 2 * k + 1]!);
    this.sizes.push(size ?? -1);
    this.names.push(name);
    if (size === null) this.anySize = true;
    else this.sizeSet.add(size);
  }

  /** Build the index; call once after the last add(). */
  seal(): void {
    const n = this.names.length;
    let cap = 16;
    while (cap < n * 2) cap *= 2;
    this.slots = new Uint32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < n; i++) {
      let s = this.digests.readUInt32LE(i * this.bytes) & this.mask;
      while (this.slots[s] !== 0) s = (s + 1) & this.mask;
      this.slots[s] = i + 1;
    }
    this.digests = this.digests.subarray(0, n * this.bytes);
  }

  /** Would a file of this size need this digest at all? */
  wants(size: number): boolean {
    return this.names.length > 0 && (this.anySize || this.sizeSet.has(size));
  }

  /** The first signature with this digest and size (or any size) whose name `skip` does not reject. */
  lookup(digest: Buffer, size: number, skip?: (name: string) => boolean): HashHit | null {
    if (this.names.length === 0) return null;
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
      const name = this.names[i]!;
      if (skip?.(name)) continue;
      return { name };
    }
    return null;
  }
}

function nibble(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}
