// The lazy, bounded registry of inode machines. A machine exists only while its file has work in flight (tags to
// read, scans running, waiters, a writer at work); at a verdict it ends and is dropped: the verdict lives on in the
// tags and the native table. An XState actor costs a few KB, so a million touched files never means a million
// machines — only as many as there are files in flight, which the gate's maxPending already bounds for waiters.
import { closeSync } from 'node:fs';
import { readlinkQuiet } from '../daemon/fs-quiet.js';
import { createActor, type Actor } from 'xstate';
import { inodeMachine } from './machine.js';
import type { InodeServices, Waiter } from './services.js';

export type InodeKey = string;
export const inodeKey = (dev: number, ino: number): InodeKey => `${dev}:${ino}`;

interface Live {
  actor: Actor<typeof inodeMachine>;
  fd: number;
  uid?: number;
}

export class InodeRegistry {
  private readonly live = new Map<InodeKey, Live>();
  private readonly onSettled: (key: InodeKey, state: string) => void;
  /** Live machines per uid that started them (the per-uid bound of Dispatch). */
  private readonly perUid = new Map<number, number>();

  constructor(
    private readonly services: InodeServices,
    onSettled: (key: InodeKey, state: string) => void = () => {},
  ) {
    this.onSettled = onSettled;
  }

  get size(): number {
    return this.live.size;
  }

  has(key: InodeKey): boolean {
    return this.live.has(key);
  }

  /** States of the live machines, for status. */
  states(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const { actor } of this.live.values()) {
      const v = String(actor.getSnapshot().value);
      out[v] = (out[v] ?? 0) + 1;
    }
    return out;
  }

  /**
   * The machine of this inode, created with `fd` if there is none. The registry takes ownership of `fd` when it
   * creates a machine (and closes it when the machine ends); otherwise the caller keeps it. Returns whether it did.
   */
  /** Live machines started by this uid's accesses. */
  liveOf(uid: number): number {
    return this.perUid.get(uid) ?? 0;
  }

  ensure(key: InodeKey, fd: number, opts: { dirty?: boolean; background?: boolean; uid?: number } = {}): boolean {
    if (this.live.has(key)) return false;
    // Display only; escaped when the name is not UTF-8 (fs-quiet.ts), so logs name a file that can be found.
    const path = readlinkQuiet(`/proc/self/fd/${fd}`) ?? `fd:${fd}`;
    const actor = createActor(inodeMachine, { input: { services: this.services, fd, path, dirty: opts.dirty, background: opts.background, uid: opts.uid } });
    const entry: Live = { actor, fd, uid: opts.uid };
    this.live.set(key, entry);
    if (opts.uid !== undefined) this.perUid.set(opts.uid, this.liveOf(opts.uid) + 1);
    actor.subscribe({
      complete: () => this.drop(key, entry),
      error: (err) => {
        // A bug in a machine must not leave its waiters to the deadline: answer them now, as the deadline would,
        // and say so loudly.
        for (const w of actor.getSnapshot().context?.waiting ?? []) this.services.answer(w, 'fallback');
        this.services.notify('verdict', { fd, path, verdict: 'error', error: String(err) });
        this.drop(key, entry);
      },
    });
    actor.start();
    return true;
  }

  access(key: InodeKey, waiter: Waiter): void {
    this.live.get(key)?.actor.send({ type: 'ACCESS', waiter });
  }

  change(key: InodeKey, closed: boolean): boolean {
    const entry = this.live.get(key);
    if (!entry) return false;
    entry.actor.send({ type: 'CHANGE', closed });
    return true;
  }

  private drop(key: InodeKey, entry: Live) {
    if (this.live.get(key) !== entry) return;
    this.live.delete(key);
    if (entry.uid !== undefined) {
      const n = this.liveOf(entry.uid) - 1;
      if (n > 0) this.perUid.set(entry.uid, n);
      else this.perUid.delete(entry.uid);
    }
    const state = String(entry.actor.getSnapshot().value);
    try {
      closeSync(entry.fd);
    } catch {
      /* already closed */
    }
    this.onSettled(key, state);
  }

  /** Stop every machine (shutdown, overflow). Their waiters are the gate's to answer. */
  stopAll(): void {
    for (const [key, entry] of [...this.live]) {
      entry.actor.stop();
      this.drop(key, entry);
    }
  }
}
