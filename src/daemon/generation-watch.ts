// Generations that change outside blessd: an actor that says so (ActorInstance.generationRefreshMs, e.g. clamd,
// whose databases are updated by freshclam and reloaded by clamd itself) is asked its generation again on a
// timer. A new answer goes to the daemon, which makes older tags stale and drops every cached verdict.
// One timer per scanner; a tick never overlaps the previous one; a failed ask keeps the old generation.
import type { StackEntry } from '../config/types.js';

export interface WatchedEntry {
  entry: StackEntry;
  everyMs: number;
}

export class GenerationWatch {
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(
    private readonly ask: (entry: StackEntry) => Promise<string>,
    private readonly known: (name: string) => string | undefined,
    private readonly onChange: (entry: StackEntry, generation: string) => Promise<void>,
    private readonly onError: (entry: StackEntry, err: unknown) => void,
  ) {}

  /** Replace the watched set (at start and at every reload). */
  watch(entries: WatchedEntry[]): void {
    this.clear();
    if (this.stopped) return;
    for (const { entry, everyMs } of entries) this.schedule(entry, everyMs);
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }

  private schedule(entry: StackEntry, everyMs: number) {
    const timer = setTimeout(async () => {
      const at = this.timers.indexOf(timer);
      if (at < 0) return; // replaced meanwhile
      try {
        const generation = await this.ask(entry);
        if (!this.stopped && this.timers.includes(timer) && generation !== this.known(entry.name)) await this.onChange(entry, generation);
      } catch (err) {
        this.onError(entry, err);
      }
      const still = this.timers.indexOf(timer);
      if (still >= 0 && !this.stopped) {
        this.timers.splice(still, 1);
        this.schedule(entry, everyMs);
      }
    }, everyMs);
    timer.unref();
    this.timers.push(timer);
  }

  private clear() {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }
}
