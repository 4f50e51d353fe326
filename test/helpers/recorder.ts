// The recording half of the fake InodeServices in the inode unit tests: each request the code under test makes is
// recorded by name, and a test waits for the one it expects with a bound that fails it.
import type { JudgedStamp } from '../../src/gate/types.js';
import type { Waiter } from '../../src/inode/services.js';
export class Recorder {
  readonly calls: string[] = [];
  private watchers: (() => void)[] = [];

  protected record(call: string) {
    this.calls.push(call);
    for (const w of this.watchers.splice(0)) w();
  }

  /** Resolves once `pred` holds (checked after every recorded request); fails the test after `ms`. */
  until(pred: () => boolean, what: string, ms = 5_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; calls: ${this.calls.join(', ')}`)), ms);
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else this.watchers.push(check);
      };
      this.watchers.push(check);
    });
  }
}

/** The answers and verdict side effects both inode unit tests' fakes record the same way. */
export class VerdictRecorder extends Recorder {
  readonly answered: [number, string][] = [];

  answer(w: Waiter, verdict: string) {
    this.answered.push([w.id, verdict]);
    this.record(`answer ${w.id} ${verdict}`);
  }
  /** What stampOf reads now (the fakes' file); each bless records what it was judged on. */
  stamp: JudgedStamp | undefined = { size: 1n, mtimeNs: 1n, ctimeNs: 1n };
  readonly blessedAt: (JudgedStamp | undefined)[] = [];
  stampOf() {
    return this.stamp && { ...this.stamp };
  }
  bless(_fd?: number, judged?: JudgedStamp) {
    this.blessedAt.push(judged);
    this.record('bless');
  }
  condemn() {
    this.record('condemn');
  }
  forget() {
    this.record('forget');
  }
  notify(kind: string, detail: Record<string, unknown>) {
    this.record(`notify ${kind}${detail['verdict'] ? ' ' + String(detail['verdict']) : ''}`);
  }
  logDenied(d: { reason?: string }) {
    this.record(`logDenied ${d.reason}`);
  }
}
