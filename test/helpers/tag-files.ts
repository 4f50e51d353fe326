// Scratch files for the tag tests: a private ext4 or tmpfs mount per test, files in it, fds closed and the mount
// removed at teardown (also when the test fails).
import type { ExecutionContext } from 'ava';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeScratch, type Scratch, type ScratchKind } from './scratch.js';
import { TagStore, type TagStoreOptions } from '../../src/tags/store.js';
import type { NativeTagPolicy } from '../../src/gate/types.js';

export const KINDS: ScratchKind[] = ['ext4', 'tmpfs'];

export interface TagScratch {
  scratch: Scratch;
  /** Create a file with this content and open it (read-only, like the daemon's fds); closed at teardown. */
  file(name: string, content?: string | Buffer): { path: string; fd: number };
  open(path: string, flags?: string): number;
  close(fd: number): void;
}

export async function tagScratch(t: ExecutionContext, kind: ScratchKind): Promise<TagScratch> {
  const scratch = await makeScratch(kind, 16);
  const fds = new Set<number>();
  t.teardown(async () => {
    for (const fd of fds) {
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    await scratch.cleanup();
  });
  const open = (path: string, flags = 'r') => {
    const fd = openSync(path, flags);
    fds.add(fd);
    return fd;
  };
  return {
    scratch,
    file(name, content = 'some content\n') {
      const path = join(scratch.dir, name);
      writeFileSync(path, content);
      return { path, fd: open(path) };
    },
    open,
    close(fd) {
      fds.delete(fd);
      closeSync(fd);
    },
  };
}

export const testKey = () => randomBytes(32);

export function store(key: Buffer, over: Partial<TagStoreOptions> = {}): TagStore {
  return new TagStore({ namespace: 'trusted', key, leaseMs: 60_000, host: 'test-host', pid: 1, ...over });
}

/**
 * Files under `dir` each with a valid `sig` tag (generation g1#0) that says `answer`, as the gate's tag policy
 * (setTagPolicy) reads them: the reader thread settles such files itself.
 */
export async function writeTagged(dir: string, names: string[], key: Buffer, answer: 'ok' | 'deny', content = (name: string) => `content of ${name}\n`): Promise<void> {
  const tags = store(key);
  for (const n of names) {
    const path = join(dir, n);
    writeFileSync(path, content(n));
    const fd = openSync(path, 'r');
    try {
      const lease = tags.begin(fd, 'sig', 'g1#0');
      if (lease.status !== 'leased') throw new Error(`no lease on ${n}`);
      const done = await tags.finish(fd, 'sig', lease.token, answer === 'deny' ? { answer: 'deny', reason: 'test' } : { answer: 'ok' }, 'g1#0');
      if (done.status !== 'written') throw new Error(`tag not written on ${n}`);
    } finally {
      closeSync(fd);
    }
  }
}

/** The gate's tag policy that settles writeTagged's files: their `sig` tag, then `default` (allow). */
export function taggedPolicy(key: Buffer, denyResponse: number): NativeTagPolicy {
  return {
    namespace: 'trusted',
    key,
    denyResponse,
    ctime: true,
    rules: [
      { name: 'sig', control: 'required', generation: 'g1#0' },
      { name: 'default', control: 'required', constant: 'allow' },
    ],
  };
}
