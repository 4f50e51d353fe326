// How long scans take, per scanner: fixed buckets, an exact sum and a count, kept in plain numbers so that the
// daemon's stats carry them and a scrape (registry.ts) or `blessctl stats` reads them without the daemon knowing
// about either. One observe() per finished scan, never per event.

/** Upper bounds (seconds) of the buckets: 0.5 ms (a small file in the built-in engine) to 5 min (a hung scanner's timeout). */
export const SCAN_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;

/** One scanner's histogram: `counts[i]` scans took at most SCAN_BUCKETS_S[i] (and more than the bound before); the last slot counts the rest. */
export interface ScanHistogram {
  counts: number[];
  sumSeconds: number;
  count: number;
}

export class ScanDurations {
  private readonly by = new Map<string, ScanHistogram>();

  observe(scanner: string, seconds: number): void {
    let h = this.by.get(scanner);
    if (!h) {
      h = { counts: new Array<number>(SCAN_BUCKETS_S.length + 1).fill(0), sumSeconds: 0, count: 0 };
      this.by.set(scanner, h);
    }
    let i = 0;
    while (i < SCAN_BUCKETS_S.length && seconds > SCAN_BUCKETS_S[i]!) i++;
    h.counts[i]!++;
    h.sumSeconds += seconds;
    h.count++;
  }

  /** Histograms summed elsewhere (a native lane batch's, src/pool/lane-books.ts), bucketed the same way. */
  merge(more: Record<string, ScanHistogram>): void {
    for (const [scanner, m] of Object.entries(more)) {
      let h = this.by.get(scanner);
      if (!h) {
        h = { counts: new Array<number>(SCAN_BUCKETS_S.length + 1).fill(0), sumSeconds: 0, count: 0 };
        this.by.set(scanner, h);
      }
      for (let i = 0; i < h.counts.length && i < m.counts.length; i++) h.counts[i]! += m.counts[i]!;
      h.sumSeconds += m.sumSeconds;
      h.count += m.count;
    }
  }

  /** A copy, for stats(). */
  snapshot(): Record<string, ScanHistogram> {
    const out: Record<string, ScanHistogram> = {};
    for (const [name, h] of this.by) out[name] = { counts: [...h.counts], sumSeconds: h.sumSeconds, count: h.count };
    return out;
  }
}

/** The duration (seconds, a bucket's upper bound) below which a fraction `p` of the scans fell; Infinity past the last bound. */
export function scanPercentile(h: ScanHistogram, p: number): number {
  if (h.count === 0) return 0;
  let acc = 0;
  for (let i = 0; i < h.counts.length; i++) {
    acc += h.counts[i]!;
    if (acc >= h.count * p) return i < SCAN_BUCKETS_S.length ? SCAN_BUCKETS_S[i]! : Infinity;
  }
  return Infinity;
}
