// Overview — whether an open file lies under one of this daemon's guards, as the guard's kind defines it: the same
// filesystem (filesystem, and mount, which covers every mount of its filesystem), or the same filesystem and a path
// at or below the root (tree). On-demand judging (the control socket's `scan`) asks it: a file outside every guard
// is never judged or tagged — its verdict would protect nothing, and its tags would claim what no gate enforces.
import { closeSync, fstatSync, openSync, readlinkSync } from 'node:fs';
import type { Guard } from '../config/types.js';

interface Known {
  kind: Guard['kind'];
  path: string;
  dev: number;
}

export class GuardedSet {
  private readonly known: Known[] = [];

  add(guard: Pick<Guard, 'kind' | 'path'>): void {
    const fd = openSync(guard.path, 'r');
    try {
      this.known.push({ kind: guard.kind, path: guard.path.replace(/\/+$/, '') || '/', dev: fstatSync(fd).dev });
    } finally {
      closeSync(fd);
    }
  }

  /** Whether the open file `fd` is gated by one of the guards. */
  covers(fd: number): boolean {
    const dev = fstatSync(fd).dev;
    let path: string | undefined;
    for (const g of this.known) {
      if (g.dev !== dev) continue;
      // A mount guard marks the filesystem and covers every mount of it (bind mounts, other namespaces).
      if (g.kind === 'filesystem' || g.kind === 'mount') return true;
      path ??= readlinkSync(`/proc/self/fd/${fd}`);
      if (g.path === '/' || path === g.path || path.startsWith(g.path + '/')) return true;
    }
    return false;
  }
}
