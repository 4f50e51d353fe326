// Rate limits for log lines a local user can cause at will (one per denied file, one per fail-closed answer): a
// flood must not fill the disk or drown the journal, and nothing may be lost silently. Up to `burst` lines per
// window and kind pass; the rest are counted, and one summary line per window says how many were not written.
import type { Logger } from './logger.js';

export class LogLimit {
  private windowStart = 0;
  private readonly passed = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  private flushTimer?: NodeJS.Timeout;

  constructor(
    private readonly log: Logger,
    private readonly burst = 20,
    private readonly windowMs = 1000,
  ) {}

  /** Whether a line of this kind may be written now; if not, it is counted for the summary. */
  take(kind: string): boolean {
    const now = Date.now();
    if (now - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = now;
      this.passed.clear();
    }
    const n = this.passed.get(kind) ?? 0;
    if (n < this.burst) {
      this.passed.set(kind, n + 1);
      return true;
    }
    this.suppressed.set(kind, (this.suppressed.get(kind) ?? 0) + 1);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), this.windowMs - (now - this.windowStart));
      this.flushTimer.unref();
    }
    return false;
  }

  /** Write the summary of what was not logged (also at stop). */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const [kind, count] of this.suppressed) {
      this.log.warn({ kind, suppressed: count, windowMs: this.windowMs }, `${count} more ${kind} lines not logged (rate limit ${this.burst} per ${this.windowMs} ms)`);
    }
    this.suppressed.clear();
  }
}
