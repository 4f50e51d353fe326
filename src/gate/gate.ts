// The typed face of the native gate: options checked at the boundary, marks per guard kind, and trees walked here
// (the kernel marks directories one by one; new and moved-in directories are followed through change events).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from './addon.js';
import { MASK, type GateEvent, type GateOptions, type MarkResult, type NativeGate, type WaitMode } from './types.js';

export type GuardKind = 'filesystem' | 'mount' | 'tree';

export interface GuardMark extends MarkResult {
  kind: GuardKind;
  path: string;
  /** Directories marked (tree guards). */
  directories: number;
}

export class Gate {
  readonly native: NativeGate;
  private readonly trees = new Map<string, { mode: WaitMode; dirs: Map<string, string> }>(); // root -> handle hex -> dir
  private closed = false;

  constructor(options: GateOptions) {
    checkOptions(options);
    const onEvents = options.onEvents;
    this.native = new native.Gate({
      ...options,
      onEvents: (events: GateEvent[]) => {
        this.followDirectories(events);
        onEvents(events);
      },
    });
  }

  /** Guard a path: the whole filesystem it is on, its mount, or the directory tree below it. */
  async guard(path: string, kind: GuardKind, mode: WaitMode): Promise<GuardMark> {
    if (kind === 'filesystem') return { ...this.native.markFilesystem(path, mode), kind, path, directories: 0 };
    if (kind === 'mount') return { ...this.native.markMount(path, mode), kind, path, directories: 0 };
    const tree = { mode, dirs: new Map<string, string>() };
    this.trees.set(path, tree);
    const first = await this.markTree(path, tree);
    return { ...first, kind, path, directories: tree.dirs.size };
  }

  async unguard(path: string, kind: GuardKind): Promise<void> {
    if (kind === 'filesystem') return this.native.unmarkFilesystem(path);
    if (kind === 'mount') return this.native.unmarkMount(path);
    const tree = this.trees.get(path);
    if (!tree) return;
    this.trees.delete(path);
    for (const dir of tree.dirs.values()) {
      try {
        this.native.unmarkDirectory(dir);
      } catch {
        /* the directory went away */
      }
    }
  }

  private async markTree(root: string, tree: { mode: WaitMode; dirs: Map<string, string> }): Promise<MarkResult> {
    const first = this.native.markDirectory(root, tree.mode);
    this.remember(root, tree);
    const queue = [root];
    while (queue.length > 0) {
      const dir = queue.pop()!;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        continue; // vanished while we walked: its removal is not our business
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const sub = join(dir, e.name);
        try {
          this.native.markDirectory(sub, tree.mode);
          this.remember(sub, tree);
          queue.push(sub);
        } catch {
          /* vanished or not a directory any more */
        }
      }
    }
    return first;
  }

  private remember(dir: string, tree: { dirs: Map<string, string> }) {
    try {
      tree.dirs.set(native.fileHandle(dir).handle.toString('hex'), dir);
    } catch {
      /* no handles on this filesystem: new subdirectories will not be followed */
    }
  }

  /** A directory created in, or moved into, a guarded tree gets marked with all it holds. */
  private followDirectories(events: GateEvent[]) {
    if (this.trees.size === 0) return;
    for (const ev of events) {
      if (ev.kind !== 'change' || !(ev.mask & MASK.ONDIR) || !(ev.mask & (MASK.CREATE | MASK.MOVED_TO | MASK.RENAME))) continue;
      if (!ev.dirHandle || !ev.name) continue;
      const key = ev.dirHandle.toString('hex');
      for (const tree of this.trees.values()) {
        const parent = tree.dirs.get(key);
        if (parent === undefined) continue;
        const dir = join(parent, ev.name);
        void this.markTree(dir, tree).catch(() => {});
      }
    }
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
  if (o.deadlineAnswer !== undefined && !['retry', 'deny', 'allow'].includes(o.deadlineAnswer)) throw new TypeError("gate: options.deadlineAnswer must be 'retry', 'deny' or 'allow'");
}

export { MASK, FAN_ALLOW, FAN_DENY, denyErrno } from './types.js';
export type { DeadlineAnswer, FallbackWhy, GateEvent, GateOptions, GateStats, WaitMode } from './types.js';
