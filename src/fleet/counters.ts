// What the fleet store did, counted in the workers where it happens and read by the main thread at once (stats,
// metrics, the store-state log): one Int32 slot per kind in a SharedArrayBuffer that rides with the judge policy,
// like the scan counters (src/pool/scan-counter.ts). Beside them, the last store error's text, for the log line
// that says the store is gone (written by whichever worker met it; read for display only, so a torn read is fine).
export const FLEET_COUNTS = ['hits', 'misses', 'published', 'refused', 'unavailable'] as const;
export type FleetCount = (typeof FLEET_COUNTS)[number];

const TEXT_AT = 4 * FLEET_COUNTS.length;
const TEXT_BYTES = 256;

export class FleetCounters {
  readonly shared: SharedArrayBuffer;
  private readonly counts: Int32Array;

  constructor(shared?: SharedArrayBuffer) {
    this.shared = shared ?? new SharedArrayBuffer(TEXT_AT + 4 + TEXT_BYTES);
    this.counts = new Int32Array(this.shared, 0, FLEET_COUNTS.length + 1);
  }

  add(kind: FleetCount, n = 1): void {
    Atomics.add(this.counts, FLEET_COUNTS.indexOf(kind), n);
  }

  snapshot(): Record<FleetCount, number> {
    const out = {} as Record<FleetCount, number>;
    FLEET_COUNTS.forEach((k, i) => (out[k] = Atomics.load(this.counts, i)));
    return out;
  }

  /** The last store error (why lookups scanned locally). */
  setLastError(message: string): void {
    const bytes = Buffer.from(message).subarray(0, TEXT_BYTES);
    new Uint8Array(this.shared, TEXT_AT + 4, TEXT_BYTES).set(bytes);
    Atomics.store(this.counts, FLEET_COUNTS.length, bytes.length);
  }

  lastError(): string {
    const n = Atomics.load(this.counts, FLEET_COUNTS.length);
    return Buffer.from(new Uint8Array(this.shared, TEXT_AT + 4, Math.min(n, TEXT_BYTES))).toString();
  }
}
