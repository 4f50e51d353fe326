// The lazy, bounded registry of inode machines. A machine exists only while its file has work in flight (tags to
// read, scans running, waiters, a writer at work); at a verdict it ends and is dropped: the verdict lives on in the
// tags and the native table. An XState actor costs a few KB, so a million touched files never means a million
// machines — only as many as there are files in flight, which the gate's maxPending already bounds for waiters.
import { closeSync } from 'node:fs';
import { readlinkQuiet } from '../daemon/fs-quiet.js';
import { native } from '../gate/addon.js';
import { createActor, type Actor } from 'xstate';
import { ColdInode, type ColdEnd } from './cold.js';
import { inodeMachine } from './machine.js';
import type { InodeServices, Waiter } from './services.js';

export type InodeKey = string;
export const inodeKey = (dev: number, ino: number): InodeKey => `${dev}:${ino}`;

/** A file in judgement: on the cold path (a plain object), or in a full machine (a change, the unusual paths). */
type Live = { cold: ColdInode; actor?: undefined; fd: number; uids: number[] } | { cold?: undefined; actor: Actor<typeof inodeMachine>; fd: number; uids: number[] };

export class InodeRegistry {
  private readonly live = new Map<InodeKey, Live>();
  private readonly onSettled: (key: InodeKey, state: string) => void;
  /** Live judgements per uid waiting for them (the per-uid bound of Dispatch): each waiter's uid counts. */
  private readonly perUid = new Map<number, number>();

  constructor(
    private readonly services: InodeServices,
    onSettled: (key: InodeKey, state: string) => void = () => {},
    /** Told when an inode's judgement starts here (true) and ends (false): the native lane leaves it alone meanwhile. */
    private readonly owned: (key: InodeKey, claim: boolean) => void = () => {},
  ) {
    this.onSettled = onSettled;
  }

  get size(): number {
    return this.live.size;
  }

  has(key: InodeKey): boolean {
    return this.live.has(key);
  }

  /** States of the live judgements, for status. */
  states(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const e of this.live.values()) {
      const v = e.cold ? e.cold.state : String(e.actor.getSnapshot().value);
      out[v] = (out[v] ?? 0) + 1;
    }
    return out;
  }

  /** Live judgements this uid waits for (or started). */
  liveOf(uid: number): number {
    return this.perUid.get(uid) ?? 0;
  }

  /**
   * The judgement of this inode, started with `fd` if there is none. The registry takes ownership of `fd` when it
   * starts one (and closes it when it ends); otherwise the caller keeps it. Returns whether it did. `waiter`: the
   * access that asked, held from the start.
   */
  ensure(key: InodeKey, fd: number, opts: { dirty?: boolean; background?: boolean; uid?: number; waiter?: Waiter; seq?: number } = {}): boolean {
    if (this.live.has(key)) return false;
    const uids = opts.uid !== undefined ? [opts.uid] : [];
    if (!opts.dirty && !opts.background && this.services.coldPath) {
      let entry: Live | undefined = undefined;
      const cold = new ColdInode(this.services, fd, opts.uid ?? 0, (state: ColdEnd) => this.drop(key, entry!, state), opts.waiter, opts.seq);
      entry = { cold, fd, uids };
      this.add(key, entry);
      return true;
    }
    // Display only; escaped when the name is not UTF-8 (fs-quiet.ts), so logs name a file that can be found.
    const path = readlinkQuiet(`/proc/self/fd/${fd}`) ?? `fd:${fd}`;
    this.startMachine(key, fd, path, uids, { dirty: opts.dirty, background: opts.background, uid: opts.uid, waiting: opts.waiter ? [opts.waiter] : undefined });
    return true;
  }

  private add(key: InodeKey, entry: Live) {
    if (!this.live.has(key)) this.owned(key, true);
    this.live.set(key, entry);
    for (const uid of entry.uids) this.perUid.set(uid, this.liveOf(uid) + 1);
  }

  private startMachine(key: InodeKey, fd: number, path: string, uids: number[], input: { dirty?: boolean; background?: boolean; uid?: number; waiting?: Waiter[] }) {
    const actor = createActor(inodeMachine, { input: { services: this.services, fd, path, ...input } });
    const entry: Live = { actor, fd, uids };
    this.add(key, entry);
    actor.subscribe({
      complete: () => this.drop(key, entry, String(actor.getSnapshot().value)),
      error: (err) => {
        // A bug in a machine must not leave its waiters to the deadline: answer them now, as the deadline would,
        // and say so loudly.
        for (const w of actor.getSnapshot().context?.waiting ?? []) this.services.answer(w, 'fallback');
        this.services.notify('verdict', { fd, path, verdict: 'error', error: String(err) });
        this.drop(key, entry, 'error');
      },
    });
    actor.start();
  }

  /** Hold this access until the verdict. False if nothing judges this inode (the caller must start it). */
  access(key: InodeKey, waiter: Waiter): boolean {
    const entry = this.live.get(key);
    if (!entry) return false;
    if (waiter.uid !== undefined && !entry.uids.includes(waiter.uid)) {
      entry.uids.push(waiter.uid);
      this.perUid.set(waiter.uid, this.liveOf(waiter.uid) + 1);
    }
    if (entry.cold) entry.cold.access(waiter);
    else entry.actor.send({ type: 'ACCESS', waiter });
    return true;
  }

  change(key: InodeKey, closed: boolean): boolean {
    const entry = this.live.get(key);
    if (!entry) return false;
    if (entry.cold) {
      // The unusual path: a full machine takes over, born dirty, with the waiters. It gets its own descriptor,
      // since the pool may still be reading the cold one (closed once it is done).
      const waiting = entry.cold.handOver();
      this.live.delete(key);
      this.owned(key, false); // claimed again at once by the machine below
      for (const uid of entry.uids) this.release(uid);
      const fd = native.dupFd(entry.fd);
      this.startMachine(key, fd, entry.cold.path, entry.uids, { dirty: true, uid: entry.uids[0], waiting });
      if (closed) this.live.get(key)?.actor?.send({ type: 'CHANGE', closed: true });
      return true;
    }
    entry.actor.send({ type: 'CHANGE', closed });
    return true;
  }

  private release(uid: number) {
    const n = this.liveOf(uid) - 1;
    if (n > 0) this.perUid.set(uid, n);
    else this.perUid.delete(uid);
  }

  private drop(key: InodeKey, entry: Live, state: string) {
    if (this.live.get(key) !== entry) return;
    this.live.delete(key);
    this.owned(key, false);
    for (const uid of entry.uids) this.release(uid);
    if (entry.actor) {
      try {
        closeSync(entry.fd);
      } catch {
        /* already closed */
      }
    }
    this.onSettled(key, state);
  }

  /** Stop every judgement (shutdown). Their waiters are the gate's to answer. */
  stopAll(): void {
    for (const [key, entry] of [...this.live]) {
      if (entry.cold) entry.cold.stop();
      else entry.actor.stop();
      this.drop(key, entry, 'stopped');
    }
  }
}
