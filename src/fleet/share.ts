// Overview — the fleet hook of the worker's judge path (src/pool/judge-batch.ts calls it, from one place per
// scanner): before a pool scanner scans a file, the answer another host published for the same content, scanner
// and generation; after a scan whose result tag was written, publishing that answer.
// Per file: the digest is taken once, and the keys of every scanner the file still needs are looked up in one round
// trip, after every scanner of the file took its lease (so the digest reads what the scans read). Where the file
// also needs a content-pass scanner (the built-in signature actor: src/pool/content-pass.ts), that scanner is the
// digest's source: its own pass hashes the content, it is not looked up (by the time a key exists it has read the
// file: a hit would save nothing), and the other scanners' lookup waits for its pass — the expensive engines are
// what the store skips, and the file is read once by blessd. Without such a pass (or if it ended without a digest)
// the digest is one read of its own before the lookup (digest.ts): the price of skipping every scanner on a hit.
// Only content answers are published: never a failure-policy answer (timeout, crash, onError, too large), and only
// when the file's stamp right after the scan is the one its digest was taken with, and its ctime too — or exactly
// the ctime our own last result tag (another scanner's) left, read right after that write (the scan read the
// content the digest names; no slack of time: a change right after our write moves ctime again); the publish happens before this scanner's result tag is written, which moves ctime. A refused value (bad MAC, other
// format version, malformed) is counted, its reason kept for the log, and the file scanned.
// Must not: hold a file longer than the store timeout, throw (a bug here would fail the scanner closed, as any
// error in scanOne does, but the store's own problems are never errors), or run on the main thread.
import type { Answer } from '../policy/answer.js';
import { readStampAndCtime, sameStamp, type Stamp } from '../tags/stamp.js';
import { FleetCounters } from './counters.js';
import { contentDigest, stillNames, type Digest } from './digest.js';
import { storeClient, type StoreClient } from './store-client.js';
import type { StoreTls } from './tls.js';
import { decodeValue, encodeValue, storeKey } from './value.js';

/** What a judge policy carries for the fleet (src/pool/tasks.ts JudgePolicy.fleet). */
export interface FleetPolicy {
  url: string;
  key: Uint8Array;
  timeoutMs: number;
  ttlS: number;
  /** This host's name, in published values (for `blessctl explain` and logs elsewhere). */
  origin: string;
  /** FleetCounters' shared memory (rides beside the serialised policy, like the scan counters). */
  counts?: SharedArrayBuffer;
  /** In a judge policy: the scanners the store serves (scope.ts); the others are never looked up or published. */
  served?: readonly string[];
  /** With a TLS store (rediss://, rediss+cluster://): fleet.tls's PEM text, read at start (tls.ts). */
  tls?: StoreTls;
}

const derived = new WeakMap<FleetPolicy, { client: StoreClient; key: Buffer; counters: FleetCounters }>();

function derivedOf(p: FleetPolicy) {
  let d = derived.get(p);
  if (!d) {
    d = { client: storeClient(p.url, p.timeoutMs, p.tls), key: Buffer.from(p.key), counters: new FleetCounters(p.counts) };
    derived.set(p, d);
  }
  return d;
}

type StampAndCtime = { stamp: Stamp; ctimeNs: bigint };

/** One file's dealings with the store. */
export class FleetFile {
  private looked?: Promise<Map<string, Answer>>;
  private digest?: Digest;
  /** The file's ctime right after our last result tag on it (digest.ts stillNames): that ctime is our own doing. */
  private ownCtimeNs?: bigint;
  /** With a source: its pass's digest, null (the file changed under it: no lookup), or undefined (none: read one). */
  private readonly passed?: Promise<Digest | null | undefined>;
  private endPass?: (d: Digest | null | undefined) => void;

  constructor(
    private readonly policy: FleetPolicy,
    private readonly fd: number,
    /** The stamped size the scans read up to (undefined: not known yet, taken from the file). */
    private readonly size: number | undefined,
    /** Scanner name -> generation, for every pool scanner the store serves that the file still needs. */
    private readonly wanted: Map<string, string>,
    /** A scanner whose scan is a content pass that gives the digest (content-pass.ts); never looked up, and only
     * published if it is one of `wanted`. */
    readonly source?: string,
    /** A digest another task's content pass took (the scan path: src/daemon/digest-round.ts), checked by the
     * caller to still name the file; null: it does not (no lookup, no publish). */
    private readonly given?: Digest | null,
  ) {
    if (source !== undefined) this.passed = new Promise((resolve) => (this.endPass = resolve));
  }

  /** The digest the lookup used (the pass's, the given one, or its own read), if any: for the content stamp. */
  taken(): Digest | undefined {
    return this.digest;
  }

  /** Another host's answer for this content and scanner, or undefined (scan it). Bounded by the store timeout. */
  async shared(scanner: string): Promise<Answer | undefined> {
    if (scanner === this.source || !this.wanted.has(scanner)) return undefined;
    // Not before this turn ends: the other scanners of the file start in this turn too, and each takes its lease
    // first (a tag write, which moves ctime). A digest taken before the last lease would match no publish. With a
    // source, its pass starts after that turn too, and the lookup waits for it.
    this.looked ??= (this.passed ?? Promise.resolve(undefined)).then((d) => this.lookup(d));
    return (await this.looked).get(scanner);
  }

  /**
   * The source's pass hashed the file's first `size` bytes: `before` and `after` are the stamp and ctime read around
   * the pass. The digest names the content only if they are the same and the stamp's size is `size` (digest.ts).
   */
  passDigest(sha256: Buffer, size: number, before: StampAndCtime, after: StampAndCtime): void {
    const same = sameStamp(before.stamp, after.stamp) && before.ctimeNs === after.ctimeNs && Number(before.stamp.size) === size;
    this.passEnded(same ? { sha256: sha256.toString('hex'), stamp: after.stamp, ctimeNs: after.ctimeNs } : null);
  }

  /** The source is done with the file (on every path: a failure, too large, a busy lease): without a digest, the
   * lookup reads one itself. Only the first call counts. */
  passEnded(d?: Digest | null): void {
    const end = this.endPass;
    if (!end) return;
    this.endPass = undefined;
    if (d) this.digest = d; // before the source's publish, which comes right after its pass
    end(d);
  }

  private async lookup(fromPass: Digest | null | undefined): Promise<Map<string, Answer>> {
    const found = new Map<string, Answer>();
    if (fromPass === null || this.given === null) return found; // changed under the pass: scan, publish nothing
    const { client, key, counters } = derivedOf(this.policy);
    const started = performance.now();
    const digest = fromPass ?? this.given ?? contentDigest(this.fd, this.size ?? Number(readStampAndCtime(this.fd).stamp.size));
    if (digest === undefined) return found; // changing under us: scan, publish nothing
    this.digest = digest;
    const names = [...this.wanted.keys()].filter((n) => n !== this.source);
    if (names.length === 0) return found;
    const keys = names.map((n) => storeKey(n, this.wanted.get(n)!, digest.sha256));
    const r = await client.get(keys);
    counters.addLookupTime((performance.now() - started) * 1000);
    if (r.failed) {
      counters.add('unavailable', names.length);
      counters.setLastError(r.why);
      return found;
    }
    r.values.forEach((raw, i) => {
      if (raw === null) return counters.add('misses');
      const d = decodeValue(key, keys[i]!, raw);
      if (!d.ok) {
        counters.add('refused');
        counters.setLastError(`refused the value at ${keys[i]}: ${d.why}`);
        return;
      }
      counters.add('hits');
      found.set(names[i]!, d.verdict.answer);
    });
    return found;
  }

  /** A result tag of ours has just been written (judge-batch.ts, right after the write; on the scan path the main
   * thread's, read there: scan-shared.ts): it moved ctime, and that is no change of content. */
  wroteTag(ctimeNs: bigint | undefined): void {
    this.ownCtimeNs = ctimeNs;
  }

  /**
   * Right after a scan's content answer (before its tag is written, which moves ctime): share it, if the file's
   * stamp is still the one its digest was taken with, and its ctime too (or the one our own last result tag on it
   * left) — then the scan read the content the digest names. Not awaited by the caller; never throws.
   */
  publish(scanner: string, answer: Answer): void {
    const generation = this.wanted.get(scanner);
    const digest = this.digest;
    if (digest === undefined || generation === undefined) return;
    // ctime moved since the digest: fine only if it is the ctime our own last tag write (another scanner's) left.
    if (!stillNames(this.fd, digest, this.ownCtimeNs)) return;
    const { client, key, counters } = derivedOf(this.policy);
    const k = storeKey(scanner, generation, digest.sha256);
    void client.publish(k, encodeValue(key, k, answer, this.policy.origin), this.policy.ttlS, answer.answer === 'deny').then((r) => {
      if (r === true) counters.add('published');
      else if (r !== false) {
        counters.add('unavailable');
        counters.setLastError(r.why);
      }
    });
  }
}
