// The typed face of the native gate: options checked at the boundary, and what each guard kind marks.
//
// Every guard is a filesystem mark (FAN_MARK_FILESYSTEM): it covers every mount of the filesystem, in every mount
// namespace, and every directory, including ones created or renamed in a moment ago. A mount mark or directory
// marks would not: a bind mount or `unshare -Urm` gives a copy of a mount without its marks, and a directory made
// a moment ago is unmarked until someone marks it. What differs between kinds is which inodes get judged:
//  - filesystem: all of them;
//  - tree: those linked into the directory tree (native/fanotify/trees.cc decides, by inode, on the native thread);
//  - mount: the mount's filesystem when the mount shows all of it (mountinfo root "/"): the same content by every
//    path; a mount of part of a filesystem (a bind mount of a subdirectory) is a tree guard on the mount's root.
import { openSync, closeSync, readFileSync } from 'node:fs';
import { native } from './addon.js';
import { type GateOptions, type MarkResult, type NativeGate, type WaitMode } from './types.js';

export type GuardKind = 'filesystem' | 'mount' | 'tree';

export interface GuardMark extends MarkResult {
  kind: GuardKind;
  path: string;
  /** What the guard judges: the whole filesystem, or the tree below `root`. */
  covers: 'filesystem' | 'tree';
  /** The tree root (tree guards, and mount guards of part of a filesystem). */
  root?: string;
  /** Why a mount guard became what it is. */
  note?: string;
}

/** The mount that holds `path`, from mountinfo: its mount point and which directory of its filesystem it shows. */
export function mountOf(path: string): { mountPoint: string; root: string; source: string; fstype: string } {
  const fd = openSync(path, 'r');
  let id: string | undefined;
  try {
    id = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  } finally {
    closeSync(fd);
  }
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[0] !== id) continue;
    const dash = f.indexOf('-');
    return { root: unescapeMountinfo(f[3]), mountPoint: unescapeMountinfo(f[4]), fstype: f[dash + 1], source: unescapeMountinfo(f[dash + 2]) };
  }
  throw new Error(`guards: ${path}: its mount (id ${id}) is not in /proc/self/mountinfo`);
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** What a guard of this kind on this path will judge, without marking anything (for `blessd check`). */
export function planGuard(path: string, kind: GuardKind): { covers: 'filesystem' | 'tree'; root?: string; note?: string } {
  if (kind === 'filesystem') return { covers: 'filesystem' };
  if (kind === 'tree') return { covers: 'tree', root: path };
  const m = mountOf(path);
  if (m.root === '/') {
    return { covers: 'filesystem', note: `the mount ${m.mountPoint} shows all of ${m.source} (${m.fstype}): a filesystem mark covers it by every mount, in every namespace` };
  }
  return {
    covers: 'tree',
    root: m.mountPoint,
    note: `the mount ${m.mountPoint} shows only ${m.root} of ${m.source} (${m.fstype}): judged as the tree below ${m.mountPoint}, by inode, whatever mount or namespace reaches it`,
  };
}

export class Gate {
  readonly native: NativeGate;
  private closed = false;

  constructor(options: GateOptions) {
    checkOptions(options);
    this.native = new native.Gate(options);
  }

  /** Guard a path: the whole filesystem it is on, its mount, or the directory tree below it. */
  async guard(path: string, kind: GuardKind, mode: WaitMode): Promise<GuardMark> {
    const plan = planGuard(path, kind);
    const mark = plan.covers === 'filesystem' ? this.native.markFilesystem(path, mode) : this.native.markTree(plan.root!, mode);
    return { ...mark, kind, path, ...plan };
  }

  async unguard(path: string, kind: GuardKind): Promise<void> {
    const plan = planGuard(path, kind);
    if (plan.covers === 'filesystem') this.native.unmarkFilesystem(path);
    else this.native.unmarkTree(plan.root!);
  }

  /**
   * Forget every verdict, and resolve once the kernel's marks are cleared too: from then on no file blessed before
   * is silent (a reload, a generation change). Bounded: past `timeoutMs` it resolves false (the gate's stats show
   * forgetsDone behind forgetsAsked); a closed gate resolves true (its marks went with it).
   */
  async forgetAll(timeoutMs = 30_000): Promise<boolean> {
    const ask = this.native.forgetAll();
    const until = performance.now() + timeoutMs;
    // The unmark thread takes ~13 µs a mark: polled, not signalled, to keep the native side free of JS callbacks.
    while (!this.closed && this.native.forgetsDone() < ask) {
      if (performance.now() > until) return false;
      await new Promise((r) => setTimeout(r, 2));
    }
    return true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}

function checkOptions(o: GateOptions) {
  if (typeof o !== 'object' || o === null) throw new TypeError('gate: options must be an object');
  if (typeof o.onEvents !== 'function') throw new TypeError('gate: options.onEvents must be a function');
  if (o.deadlineMs !== undefined && !(Number.isFinite(o.deadlineMs) && o.deadlineMs >= 1)) throw new RangeError('gate: options.deadlineMs must be a positive number');
  if (o.maxPending !== undefined && !(Number.isInteger(o.maxPending) && o.maxPending >= 1 && o.maxPending < 20000)) {
    throw new RangeError('gate: options.maxPending must be an integer from 1 to 19999 (each waiting event holds an fd; RLIMIT_NOFILE is 20000 here)');
  }
  if (o.accessDeadlineMs !== undefined && !(Number.isFinite(o.accessDeadlineMs) && o.accessDeadlineMs >= 1)) throw new RangeError('gate: options.accessDeadlineMs must be a positive number');
  if (o.maxPendingPerUid !== undefined && !(Number.isInteger(o.maxPendingPerUid) && o.maxPendingPerUid >= 1 && o.maxPendingPerUid <= (o.maxPending ?? 4096))) {
    throw new RangeError('gate: options.maxPendingPerUid must be an integer from 1 to maxPending');
  }
  if (o.maxAllowedEntries !== undefined && !(Number.isInteger(o.maxAllowedEntries) && o.maxAllowedEntries >= 1 && o.maxAllowedEntries <= 10_000_000)) {
    throw new RangeError('gate: options.maxAllowedEntries must be an integer from 1 to 10000000');
  }
  if (o.deadlineAnswer !== undefined && !['retry', 'deny', 'allow'].includes(o.deadlineAnswer)) throw new TypeError("gate: options.deadlineAnswer must be 'retry', 'deny' or 'allow'");
}

export { MASK, FAN_ALLOW, FAN_DENY, denyErrno } from './types.js';
export type { DeadlineAnswer, FallbackWhy, GateEvent, GateOptions, GateStats, WaitMode } from './types.js';
