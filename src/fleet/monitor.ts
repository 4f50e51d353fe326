// Main thread: says in the log when the fleet store stops answering and when it is back — once per change, not
// once per file (the workers only count: counters.ts) — and when values are refused, with how many since the last
// line. Checks the counters once a second on an unref'd timer; costs nothing per file.
import type { Logger } from '../daemon/logger.js';
import type { FleetCounters } from './counters.js';

export class FleetMonitor {
  private last = { unavailable: 0, refused: 0, hits: 0, misses: 0 };
  private down = false;
  /** Failed lookups of seconds that also had answers, not said yet. */
  private mixed = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly counters: FleetCounters,
    private readonly log: Logger,
    private readonly url: string,
    everyMs = 1000,
  ) {
    this.timer = setInterval(() => this.check(), everyMs);
    this.timer.unref();
  }

  check(): void {
    const now = this.counters.snapshot();
    const unavailable = now.unavailable - this.last.unavailable;
    const refused = now.refused - this.last.refused;
    const answered = now.hits + now.misses - this.last.hits - this.last.misses;
    if (this.down && answered > 0) {
      this.down = false;
      this.log.info({ store: this.url }, 'fleet store answering again');
    } else if (!this.down && unavailable > 0 && answered === 0) {
      this.goneDown(unavailable);
    } else if (!this.down && unavailable > 0) {
      // Answers and failures in one second: which came last is unknown (a store that died after answering, or part
      // of a cluster). Said once the lookups stop, if no answer came since: a burst that ends in failures is a loss.
      this.mixed += unavailable;
    } else if (!this.down && this.mixed > 0 && answered === 0) {
      this.goneDown(this.mixed);
    }
    if (answered > 0 && unavailable === 0) this.mixed = 0;
    if (refused > 0) this.log.warn({ store: this.url, values: refused, last: this.counters.lastError() }, 'fleet store: refused values (bad MAC, another format version, malformed): those files were scanned locally');
    this.last = { unavailable: now.unavailable, refused: now.refused, hits: now.hits, misses: now.misses };
  }

  private goneDown(lookups: number): void {
    this.down = true;
    this.mixed = 0;
    this.log.warn({ store: this.url, lookups, err: this.counters.lastError() }, 'fleet store unavailable: files are scanned locally until it is back');
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
