// What the fleet store did, counted in the workers where it happens and read by the main thread at once (stats,
// metrics, the store-state log): one Int32 slot per kind in a SharedArrayBuffer that rides with the judge policy,
// like the scan counters (src/pool/scan-counter.ts). Beside them, the last store error's text, for the log line
// that says the store is gone (written by whichever worker met it; read for display only, so a torn read is fine).
export const FLEET_COUNTS = ['hits', 'misses', 'published', 'refused', 'unavailable'] as const;
export type FleetCount = (typeof FLEET_COUNTS)[number];

// Layout: the Int32 counts, the text's length, then (8-aligned) the lookups' total time in µs as a BigInt64 (an
// Int32 of µs would wrap after 36 minutes of lookups), then the text.
const TIME_AT = 8 * Math.ceil((4 * (FLEET_COUNTS.length + 1)) / 8);
const TEXT_AT = TIME_AT + 8;
const TEXT_BYTES = 256;

export class FleetCounters {
  readonly shared: SharedArrayBuffer;
  private readonly counts: Int32Array;
  private readonly time: BigInt64Array;

  constructor(shared?: SharedArrayBuffer) {
    this.shared = shared ?? new SharedArrayBuffer(TEXT_AT + TEXT_BYTES);
    this.counts = new Int32Array(this.shared, 0, FLEET_COUNTS.length + 1);
    this.time = new BigInt64Array(this.shared, TIME_AT, 1);
  }

  /** A lookup's time (digest and round trip), for the mean in stats. */
  addLookupTime(us: number): void {
    Atomics.add(this.time, 0, BigInt(Math.round(us)));
  }

  add(kind: FleetCount, n = 1): void {
    Atomics.add(this.counts, FLEET_COUNTS.indexOf(kind), n);
  }

  snapshot(): Record<FleetCount | 'lookupUs', number> {
    const out = {} as Record<FleetCount | 'lookupUs', number>;
    FLEET_COUNTS.forEach((k, i) => (out[k] = Atomics.load(this.counts, i)));
    out.lookupUs = Number(Atomics.load(this.time, 0));
    return out;
  }

  /** The last store error (why lookups scanned locally). */
  setLastError(message: string): void {
    const bytes = Buffer.from(message).subarray(0, TEXT_BYTES);
    new Uint8Array(this.shared, TEXT_AT, TEXT_BYTES).set(bytes);
    Atomics.store(this.counts, FLEET_COUNTS.length, bytes.length);
  }

  lastError(): string {
    const n = Atomics.load(this.counts, FLEET_COUNTS.length);
    return Buffer.from(new Uint8Array(this.shared, TEXT_AT, Math.min(n, TEXT_BYTES))).toString();
  }
}
