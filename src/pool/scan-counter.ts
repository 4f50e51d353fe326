// Scans started, per scanner, counted where they start: in the workers, in shared memory the main thread reads at
// once (status, metrics and tests see a scan while it runs, not only when its batch comes back). One Int32 slot per
// scanner name, handed out on first sight and kept across reloads; past SLOTS names the caller counts on its own.
export const SLOTS = 256;

export class ScanCounter {
  /** Shared with every judge task (a SharedArrayBuffer is shared, not copied, when posted). */
  readonly shared = new SharedArrayBuffer(4 * SLOTS);
  private readonly counts = new Int32Array(this.shared);
  private readonly slots = new Map<string, number>();

  /** The slot of this scanner, or -1 if every slot is taken. */
  slot(name: string): number {
    let i = this.slots.get(name);
    if (i === undefined) {
      if (this.slots.size >= SLOTS) return -1;
      i = this.slots.size;
      this.slots.set(name, i);
    }
    return i;
  }

  /** Scans started so far, per scanner that has a slot. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, i] of this.slots) {
      const n = Atomics.load(this.counts, i);
      if (n > 0) out[name] = n;
    }
    return out;
  }
}

/** In a worker: one more scan of the scanner in `slot` (-1: not counted here). */
export function countScan(shared: SharedArrayBuffer | undefined, slot: number | undefined): void {
  if (shared && slot !== undefined && slot >= 0) Atomics.add(new Int32Array(shared), slot, 1);
}
