// Overview — whether an open file lies under one of this daemon's guards, as the guard's kind defines it: the same
// filesystem (filesystem), the same mount of it (mount: same st_dev and mnt_id), or the same filesystem and a path
// at or below the root (tree). On-demand judging (the control socket's `scan`) asks it: a file outside every guard
// is never judged or tagged — its verdict would protect nothing, and its tags would claim what no gate enforces.
import { closeSync, fstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import type { Guard } from '../config/types.js';

interface Known {
  kind: Guard['kind'];
  path: string;
  dev: number;
  mntId: number | undefined;
}

/** mnt_id of an fd, from /proc/self/fdinfo (any filesystem; no handles needed). */
function mntIdOf(fd: number): number | undefined {
  try {
    const m = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export class GuardedSet {
  private readonly known: Known[] = [];

  add(guard: Pick<Guard, 'kind' | 'path'>): void {
    const fd = openSync(guard.path, 'r');
    try {
      this.known.push({ kind: guard.kind, path: guard.path.replace(/\/+$/, '') || '/', dev: fstatSync(fd).dev, mntId: mntIdOf(fd) });
    } finally {
      closeSync(fd);
    }
  }

  /** Whether the open file `fd` is gated by one of the guards. */
  covers(fd: number): boolean {
    const dev = fstatSync(fd).dev;
    let path: string | undefined;
    let mntId: number | undefined | null = null;
    for (const g of this.known) {
      if (g.dev !== dev) continue;
      if (g.kind === 'filesystem') return true;
      if (g.kind === 'mount') {
        if (mntId === null) mntId = mntIdOf(fd);
        if (mntId !== undefined && mntId === g.mntId) return true;
        continue;
      }
      path ??= readlinkSync(`/proc/self/fd/${fd}`);
      if (g.path === '/' || path === g.path || path.startsWith(g.path + '/')) return true;
    }
    return false;
  }
}
