// Overview — one file through every signature, in one pass (the hot path of the `signature` actor).
//
// Owns the per-worker matching state built from the loaded databases: plain-hex patterns at a fixed offset inside
// the first chunk (compared in place, no search), every other body pattern in one Vectorscan stream (offset and
// target-type checks decided in the native match callback), one digest per algorithm that some hash signature of
// this file's size needs (whole-file hashes cost nothing for a file of a size no signature names), and PE section
// hashes for PE files. The read loop, the digests and the stream run in C++ in one call per file
// (native/match/pass.cc): a 1 MiB chunk is read once and hashed and matched while it is in cache, and a 4 KiB file
// costs one crossing instead of seven. Asked for it (the fleet key: src/pool/content-pass.ts), the same pass also
// hashes the whole content with SHA-256, reading on past a body hit, so that the daemon need not read the file
// again for its digest. Reads are synchronous preads into one reused buffer: this worker thread has
// nothing else to do meanwhile, and a hop through libuv's pool per read was 70 % of a 4 KiB scan (docs/bench.md).
// What the pass finds is decided here: the hash tables, .ign2 names and allow-lists stay in JS. scanInJs() is the
// same engine written in JS alone, kept as the reference that test/signature-pass.test.ts holds the pass to.
// Must not: keep a chunk past the next read (the buffer is reused), read past the size the daemon stamped, or
// decide "allowed" for a file an allow-list (.fp/.sfp) does not name in full.
import { createHash, type Hash } from 'node:crypto';
import { readSync } from 'node:fs';
import { literalExpression } from './body-pattern.js';
import type { BodySignature, Databases, HashTables } from './database.js';
import { fileLayout, TARGET, type FileLayout } from './file-type.js';
import type { HashAlgo, HashTable } from './hash-table.js';
import { match, PASS, type BodyMatcher, type ScanPass } from './vectorscan.js';

interface Anchored {
  at: number;
  bytes: Buffer;
  name: string;
}

const CHECK_KIND = { any: 0, absolute: 1, end: 2, entry: 3 } as const;

export interface EngineStats {
  anchored: number;
  streamed: number;
  dropped: string[];
}

export class SignatureEngine {
  private readonly anchored: Anchored[] = [];
  private readonly streamed: BodySignature[] = [];
  private readonly matcher: BodyMatcher | null = null;
  private readonly needsLayout: boolean;
  private readonly buffer: Buffer;
  private readonly ignored: Set<string>;
  private readonly skip: ((name: string) => boolean) | undefined;
  private readonly pass: ScanPass;
  private readonly passState = new Float64Array(PASS.state.slots);
  private readonly digestViews: Record<HashAlgo, Buffer>;
  /** Per algorithm, its bit in the pass's digest mask and the tables that may want it. */
  private readonly fileTables: [number, HashTable][];
  private readonly allowTables: [number, HashTable][];
  /** Patterns Vectorscan refused (named in warnings), so that one bad line does not cost the rest. */
  readonly dropped: string[] = [];
  /** Whether the last scan() that was asked for a SHA-256 hashed the whole file (it was not cut short). */
  digested = false;

  constructor(
    private readonly db: Databases,
    chunkSize: number,
  ) {
    this.buffer = Buffer.allocUnsafeSlow(chunkSize);
    this.ignored = db.ignored;
    this.skip = db.ignored.size > 0 ? (name) => db.ignored.has(name) : undefined;
    for (const b of db.bodies) {
      const o = b.offset;
      if (this.ignored.has(b.name)) continue;
      if (b.body.literal && b.target === TARGET.any && o.kind === 'absolute' && o.lo === o.hi && o.lo + b.body.literal.length <= chunkSize) {
        this.anchored.push({ at: o.lo, bytes: b.body.literal, name: b.name });
      } else this.streamed.push(b);
    }
    this.anchored.sort((a, b) => a.at - b.at);
    this.matcher = this.compile();
    this.needsLayout =
      db.sections.size > 0 || this.streamed.some((b) => b.target !== TARGET.any || b.offset.kind === 'entry');
    const digests = Buffer.alloc(PASS.digestBytes);
    const view = (algo: HashAlgo) => digests.subarray(PASS.digestAt[algo][0], PASS.digestAt[algo][1]);
    this.digestViews = { md5: view('md5'), sha1: view('sha1'), sha256: view('sha256') };
    this.fileTables = [...db.files].map(([algo, t]) => [PASS.digestBit[algo], t]);
    this.allowTables = [...db.allow].map(([algo, t]) => [PASS.digestBit[algo], t]);
    const ends = new Uint32Array(this.anchored.length);
    let end = 0;
    this.anchored.forEach((a, i) => (ends[i] = end += a.bytes.length));
    this.pass = new match.ScanPass(
      this.buffer,
      digests,
      this.passState,
      this.matcher,
      Float64Array.from(this.anchored, (a) => a.at),
      ends,
      Buffer.concat(this.anchored.map((a) => a.bytes)),
    );
  }

  private compile(): BodyMatcher | null {
    for (;;) {
      if (this.streamed.length === 0) return null;
      const n = this.streamed.length;
      const flags = new Uint32Array(n);
      const checks = new Float64Array(n * 5);
      const expressions: string[] = new Array(n);
      this.streamed.forEach((b, i) => {
        expressions[i] = b.body.expression || literalExpression(b.body.literal!);
        const o = b.offset;
        // Where the offset matters, every occurrence must be reported (the first may be at the wrong place), and a
        // variable-length pattern must report where it starts (SOM).
        const som = o.kind !== 'any' && b.body.fixedLength === null;
        flags[i] = match.FLAG_DOTALL | (o.kind === 'any' ? match.FLAG_SINGLEMATCH : 0) | (som ? match.FLAG_SOM_LEFTMOST : 0);
        checks.set([CHECK_KIND[o.kind], b.target, o.kind === 'any' ? 0 : o.lo, o.kind === 'any' ? 0 : o.hi, som ? -1 : (b.body.fixedLength ?? 0)], i * 5);
      });
      try {
        return new match.BodyMatcher(expressions, flags, checks);
      } catch (err) {
        const m = /expression (-?[0-9]+): (.*)$/.exec((err as Error).message);
        const at = m ? Number(m[1]) : -1;
        if (at < 0 || at >= n) throw err;
        this.dropped.push(`${this.streamed[at]!.name}: Vectorscan cannot compile this pattern (${m![2]}); signature skipped`);
        this.streamed.splice(at, 1);
      }
    }
  }

  get stats(): EngineStats {
    return { anchored: this.anchored.length, streamed: this.streamed.length, dropped: this.dropped };
  }

  /**
   * The name of the first signature that matches the file, or null. With `sha256`, the pass also hashes every byte
   * up to `size` (reading on past a body hit) and copies the SHA-256 there; `digested` then says whether it covers
   * the whole file (false if the file shrank). That is the fleet key of the content, taken in the same read.
   */
  scan(fd: number, size: number, sha256?: Buffer): string | null {
    const { db, pass } = this;
    let fileMask = 0;
    let allowMask = 0;
    for (const [bit, t] of this.fileTables) if (t.wants(size)) fileMask |= bit;
    for (const [bit, t] of this.allowTables) if (t.wants(size)) allowMask |= bit;
    const checkAllow = allowMask !== 0;
    let layout: FileLayout | null = null;
    let head = -1;
    if (this.needsLayout && size > 0) {
      head = pass.head(fd, size);
      layout = fileLayout(fd, size, this.buffer.subarray(0, head));
    }
    const extra = sha256 ? PASS.digestBit.sha256 : 0;
    const flags = checkAllow || sha256 ? PASS.flags.keepReadingAfterHit : 0;
    const kind = pass.run(fd, size, fileMask | allowMask | extra, flags, layout?.entry ?? -1, layout?.type ?? TARGET.any, head);
    const state = this.passState;
    this.digested = sha256 !== undefined && state[PASS.state.position] === size;
    if (this.digested) this.digestViews.sha256.copy(sha256!);
    const hit = kind === PASS.hit.none ? null : kind === PASS.hit.anchored ? this.anchored[state[PASS.state.hitIndex]!]!.name : this.streamed[state[PASS.state.hitIndex]!]!.name;
    const views = this.digestViews;
    if (checkAllow && state[PASS.state.position] === size) {
      for (const [algo, t] of db.allow) if (allowMask & PASS.digestBit[algo] && t.lookup(views[algo], size)) return null; // a known-good file: never denied
    }
    if (hit) return hit;
    if (fileMask !== 0) {
      for (const [algo, t] of db.files) {
        if (!(fileMask & PASS.digestBit[algo])) continue;
        const found = t.lookup(views[algo], size, this.skip);
        if (found) return found.name;
      }
    }
    if (layout && layout.type === TARGET.pe && db.sections.size > 0) return this.sectionHit(fd, layout);
    return null;
  }

  /**
   * The same engine in JS alone (Node's Hash objects, the JS chunk loop, the matcher chunk by chunk): the reference
   * the native pass is tested against, and bench/engine's baseline. Not used by the actor.
   */
  scanInJs(fd: number, size: number): string | null {
    const { db, buffer } = this;
    const hashes = new Map<HashAlgo, Hash>();
    const want = (tables: HashTables) => {
      for (const [algo, t] of tables) if (!hashes.has(algo) && t.wants(size)) hashes.set(algo, createHash(algo));
    };
    want(db.files);
    want(db.allow);
    const checkAllow = [...db.allow.values()].some((t) => t.wants(size));

    let hit: string | null = null;
    let layout: FileLayout | null = null;
    let position = 0;
    let first = true;
    const matcher = this.matcher;
    while (position < size) {
      const length = Math.min(buffer.length, size - position);
      let filled = 0;
      while (filled < length) {
        const n = readSync(fd, buffer, filled, length - filled, position + filled);
        if (n === 0) break;
        filled += n;
      }
      const chunk = buffer.subarray(0, filled);
      if (first) {
        first = false;
        layout = this.needsLayout ? fileLayout(fd, size, chunk) : null;
        hit = this.anchoredHit(chunk);
        if (!hit && matcher) matcher.begin(size, layout?.entry ?? -1, layout?.type ?? TARGET.any);
      }
      for (const h of hashes.values()) h.update(chunk);
      if (!hit && matcher) {
        const i = matcher.push(chunk);
        if (i >= 0) hit = this.streamed[i]!.name;
      }
      position += filled;
      // A body match decides, unless an allow-list may still name this file: then its digest needs every byte.
      if (hit && !checkAllow) break;
      if (filled < length) break; // the file shrank since it was stat'ed
    }
    if (!hit && matcher && !first) {
      const i = matcher.end();
      if (i >= 0) hit = this.streamed[i]!.name;
    } else if (matcher && !first) matcher.end();

    const digests = new Map<HashAlgo, Buffer>();
    for (const [algo, h] of hashes) digests.set(algo, h.digest());
    if (checkAllow && position === size) {
      for (const [algo, t] of db.allow) {
        const d = digests.get(algo);
        if (d && t.lookup(d, size)) return null; // a known-good file: never denied
      }
    }
    if (hit) return hit;
    for (const [algo, t] of db.files) {
      const d = digests.get(algo);
      const found = d ? t.lookup(d, size, this.skip) : null;
      if (found) return found.name;
    }
    if (layout && layout.type === TARGET.pe && db.sections.size > 0) return this.sectionHit(fd, layout);
    return null;
  }

  private anchoredHit(chunk: Buffer): string | null {
    for (const a of this.anchored) {
      if (a.at >= chunk.length) break; // sorted by offset: the rest start later still
      if (a.at + a.bytes.length > chunk.length) continue; // a shorter one further on may still fit
      if (chunk[a.at] === a.bytes[0] && chunk.compare(a.bytes, 0, a.bytes.length, a.at, a.at + a.bytes.length) === 0 && !this.ignored.has(a.name)) return a.name;
    }
    return null;
  }

  private sectionHit(fd: number, layout: FileLayout): string | null {
    for (const s of layout.sections) {
      for (const [algo, t] of this.db.sections) {
        if (!t.wants(s.size)) continue;
        const bytes = Buffer.allocUnsafe(s.size);
        const n = readSync(fd, bytes, 0, s.size, s.offset);
        const found = t.lookup(createHash(algo).update(bytes.subarray(0, n)).digest(), s.size, this.skip);
        if (found) return found.name;
      }
    }
    return null;
  }
}
