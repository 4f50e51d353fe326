// Overview — one digest per file version on the main thread's scan path (rescans, background scans, and every cold
// file with `tags.stamp: content`, which the worker batch does not serve). The inode machine runs the scanners a
// file needs at once, one pool task each (scan-actors.ts); a round is those scans of one file, found by the cancel
// flag they share. What it does: the round's content pass (the built-in signature actor) returns the SHA-256 its
// one read gives anyway; the scanners the fleet store serves wait for it (before they take a pool slot: a wait while
// holding one could starve the pass of its own) and look the store up with it; the content stamp's result tags
// carry it (TagStore.finish) — instead of a read of the file for each. Without a pass, the first served scanner's
// lookup digest is reused the same way.
// A digest is reused only while it still names the file (src/fleet/digest.ts stillNames): its stamp, and its ctime
// or exactly the ctime our own last tag write of the round left (read right after each lease and result write: a
// change by anyone after that moves ctime again — multigrain timestamps, docs/kernel.md — so no slack is needed).
// Else the old read happens (TagStore.finish digests the file itself; a lookup reads its own).
// Must not: block, read the file, or hold a scan that has no pass to wait for.
import { stillNames } from '../fleet/digest.js';
import { readStampAndCtime } from '../tags/stamp.js';
import type { FileDigest } from '../pool/tasks.js';

export class DigestRound {
  /** The round's content-pass scanner, if it has one. */
  private source?: string;
  private known?: FileDigest;
  private ownCtimeNs?: bigint;
  private anyServed = false;
  private readonly passed: Promise<void>;
  private endPass!: () => void;

  /** `contentStamp`: result tags carry a digest (tags.stamp: content). */
  constructor(private readonly contentStamp: boolean) {
    this.passed = new Promise((resolve) => (this.endPass = resolve));
  }

  /** A scanner of the round, at the start of its scan (synchronously: every scanner joins before any awaits). */
  join(name: string, how: { pass: boolean; served: boolean }): void {
    if (how.pass && this.source === undefined) this.source = name;
    if (how.served) this.anyServed = true;
  }

  /** Whether the pass should return its digest: someone in the round uses it (a pass past a hit reads on for it). */
  wantsPassDigest(name: string): boolean {
    return name === this.source && (this.contentStamp || this.anyServed);
  }

  isSource(name: string): boolean {
    return name === this.source;
  }

  /** Before the pass's digest is known: a served scanner looks the store up with it, so it waits (no slot held). */
  async beforeLookup(name: string): Promise<void> {
    await null; // after this turn: every scanner of the round has joined (the pass may come after it in the stack)
    if (this.source !== undefined && name !== this.source) await this.passed;
  }

  /** The source's scan is over (every way out; only the first call counts). */
  passEnded(): void {
    this.endPass();
  }

  /** A tag write of ours on this file just landed (a lease or a result; called right after it, with no await
   * between): it moved ctime, not the content. The ctime it left is ours. */
  wroteTag(fd: number): void {
    try {
      this.ownCtimeNs = readStampAndCtime(fd).ctimeNs;
    } catch {
      this.ownCtimeNs = undefined; // gone: nothing is reused
    }
  }

  /** The ctime our last tag write left, for a worker's check (scan-shared.ts). */
  get ownCtime(): bigint | undefined {
    return this.ownCtimeNs;
  }

  /** A digest a task read anyway (the pass's, or a lookup's). A pass during which ctime moved counts only if our
   * own tag writes explain it (another scanner's lease, taken while the pass read): else it names no content. */
  offer(d: FileDigest | undefined): void {
    if (!d) return;
    if (d.ctimeMovedFrom !== undefined && d.ctimeNs !== this.ownCtimeNs) return;
    const { ctimeMovedFrom: _, ...digest } = d;
    this.known = digest;
  }

  /** The round's digest for a task to use instead of a read, as taken (the worker checks it still names the file). */
  digest(): FileDigest | undefined {
    return this.known;
  }

  /** The SHA-256 for a content stamp written now, if the round's digest still names the file. */
  forTag(fd: number): string | undefined {
    return this.known && stillNames(fd, this.known, this.ownCtimeNs) ? this.known.sha256 : undefined;
  }
}
