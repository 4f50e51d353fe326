// Reading the gate's answer-latency histogram (native/fanotify/gate.h, latency_bucket): exact below 8 µs, then eight
// buckets per power of two.

/** The lowest latency (µs) that falls in bucket `i`. */
export function bucketFloorUs(i: number): number {
  if (i < 8) return i;
  const e = Math.floor((i - 8) / 8) + 3;
  const sub = (i - 8) % 8;
  return (8 + sub) * 2 ** (e - 3);
}

/** The latency (µs, the bucket's upper edge) below which a fraction `p` (0..1) of the answers fell. */
export function latencyPercentile(counts: readonly number[], p: number): number {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let acc = 0;
  for (let i = 0; i < counts.length; i++) {
    acc += counts[i];
    if (acc >= total * p) return bucketFloorUs(i + 1);
  }
  return bucketFloorUs(counts.length);
}

/** Counts added between two snapshots of the histogram. */
export const latencyDelta = (after: readonly number[], before: readonly number[]) => after.map((v, i) => v - (before[i] ?? 0));
