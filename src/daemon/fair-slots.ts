// Overview — fair scan slots: the pool's gating scans, handed out round-robin across the uids whose accesses started
// them. One uid flooding unjudged files queues behind its own scans; another uid's scan waits for at most one
// slot per uid ahead of it, whatever the flood. The queue itself is bounded elsewhere (Dispatch refuses a uid's new
// machines past pool.queuePerUid, with EAGAIN): here nothing is refused, only ordered.
// Must not: block (acquire returns a promise), or lose a slot (every acquire that resolved is released once).

import type { Cancelled } from '../pool/cancel.js';

export class FairSlots {
  private free: number;
  /** uid -> its waiting acquirers, in arrival order; the Map's order is the round-robin turn. */
  private readonly queues = new Map<number, (() => void)[]>();

  constructor(slots: number) {
    this.free = Math.max(1, slots);
  }

  /** Waiting acquirers, per uid (status). */
  queued(): Record<string, number> {
    return Object.fromEntries([...this.queues].map(([uid, q]) => [String(uid), q.length]));
  }

  /**
   * Resolves when a slot is this caller's. `signal` aborted while waiting: when its turn comes, the slot passes on
   * at once and the call rejects (a plain flag has no abort event; a dead waiter costs nothing but its turn).
   */
  acquire(uid: number, signal?: Cancelled): Promise<void> {
    if (signal?.aborted) return Promise.reject(new Error('no longer wanted'));
    if (this.free > 0 && this.queues.size === 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      let q = this.queues.get(uid);
      if (!q) this.queues.set(uid, (q = []));
      q.push(() => {
        if (!signal?.aborted) return resolve();
        reject(new Error('no longer wanted'));
        this.release();
      });
    });
  }

  release(): void {
    // The uid whose turn it is: the first in the Map. It goes to the back if it still has waiters.
    for (const [uid, q] of this.queues) {
      const next = q.shift()!;
      this.queues.delete(uid);
      if (q.length > 0) this.queues.set(uid, q);
      next();
      return;
    }
    this.free++;
  }
}
