// What this daemon guards, published where unprivileged programs can read it: the preload library
// (native/preload/guards.c) steps aside on these filesystems, so no file is scanned twice. Format, one guard a line:
//   blessd-guards v1 pid=<pid>
//   dev=<st_dev> kind=<tree|mount|filesystem> path=<percent-encoded path>
// Written atomically (temp file + rename), world-readable; removed at stop only if it still names this daemon.
// A daemon that dies leaves the file behind: readers check that the pid is alive.
import { mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const DEFAULT_GUARDS_FILE = '/run/blessd/guards';

export interface PublishedGuard {
  path: string;
  kind: string;
}

export function publishGuards(file: string, guards: readonly PublishedGuard[], pid = process.pid): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  const lines = [`blessd-guards v1 pid=${pid}`];
  for (const g of guards) lines.push(`dev=${statSync(g.path).dev} kind=${g.kind} path=${encodeURIComponent(g.path)}`);
  const tmp = `${file}.tmp-${pid}`;
  writeFileSync(tmp, lines.join('\n') + '\n', { mode: 0o644 });
  renameSync(tmp, file);
}

export function unpublishGuards(file: string, pid = process.pid): void {
  try {
    if (readFileSync(file, 'utf8').startsWith(`blessd-guards v1 pid=${pid}\n`)) unlinkSync(file);
  } catch {
    /* already gone */
  }
}
