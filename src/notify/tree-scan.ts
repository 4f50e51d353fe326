// Scan on demand: judge one file or every regular file of a tree now, through the same inode machines as an
// access would (tags first, scans for what is missing), and report progress. Files are opened by the daemon
// itself (our pid: the gate lets us through on its own thread), at most `concurrency` at once across every
// on-demand scan, and symlinks are never followed (a tree scan must not wander out of the tree).
import { closeSync, constants, fstat, open } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Semaphore } from '../daemon/semaphore.js';
import type { DaemonControl } from './daemon-control.js';
import { ProtocolError } from './protocol.js';

const openFd = promisify(open);
const fstatFd = promisify(fstat);

export interface FileVerdict {
  path: string;
  verdict: 'allow' | 'deny' | 'error' | 'pending';
  decidedBy?: string;
  reason?: string;
}

export interface ScanProgress {
  done: number;
  total: number;
  allowed: number;
  denied: number;
  errors: number;
}

export interface ScanSummary extends ScanProgress {
  pending: number;
  ms: number;
  /** The first denials (at most 100), for the operator. */
  denials: FileVerdict[];
  truncated: boolean;
}

/** Waits for machines' verdict notices, keyed by "dev:ino". The server feeds it every verdict notice. */
export class VerdictWaiters {
  private readonly waiting = new Map<string, ((n: Record<string, unknown>) => void)[]>();

  wait(key: string, timeoutMs: number, signal: AbortSignal): Promise<Record<string, unknown> | undefined> {
    return new Promise((resolve) => {
      const done = (n: Record<string, unknown> | undefined) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        const list = this.waiting.get(key)?.filter((f) => f !== got);
        if (list && list.length > 0) this.waiting.set(key, list);
        else this.waiting.delete(key);
        resolve(n);
      };
      const got = (n: Record<string, unknown>) => done(n);
      const onAbort = () => done(undefined);
      const timer = setTimeout(() => done(undefined), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.set(key, [...(this.waiting.get(key) ?? []), got]);
    });
  }

  /** Someone waits for a verdict notice. */
  get size(): number {
    return this.waiting.size;
  }

  /** A verdict notice: wake whoever waits for this inode. */
  deliver(notice: Record<string, unknown>) {
    if (this.waiting.size === 0 || typeof notice['dev'] !== 'number' || typeof notice['ino'] !== 'number') return;
    const list = this.waiting.get(`${notice['dev']}:${notice['ino']}`);
    if (list) for (const f of [...list]) f(notice);
  }
}

export class TreeScanner {
  private readonly slots: Semaphore;

  constructor(
    private readonly control: DaemonControl,
    private readonly waiters: VerdictWaiters,
    private readonly concurrency: number,
    private readonly maxFiles: number,
  ) {
    this.slots = new Semaphore(concurrency);
  }

  async scan(path: string, signal: AbortSignal, onProgress: (p: ScanProgress) => void): Promise<ScanSummary> {
    const started = Date.now();
    let st;
    try {
      st = await lstat(path);
    } catch (err) {
      throw new ProtocolError('NOT_FOUND', `scan: ${path}: ${(err as Error).message}`);
    }
    if (!st.isFile() && !st.isDirectory()) throw new ProtocolError('BAD_REQUEST', `scan: ${path} is neither a regular file nor a directory`);
    const { files, truncated } = st.isFile() ? { files: [path], truncated: false } : await this.walk(path, signal);
    const s: ScanSummary = { done: 0, total: files.length, allowed: 0, denied: 0, errors: 0, pending: 0, ms: 0, denials: [], truncated };
    onProgress(progressOf(s));
    let lastReport = Date.now();
    // A few workers pull files in order (not one promise per file: a tree may hold a million). The shared
    // semaphore bounds the files in flight across every on-demand scan at once.
    let next = 0;
    const worker = async () => {
      while (!signal.aborted && next < files.length) {
        const file = files[next++]!;
        await this.slots.acquire();
        try {
          if (signal.aborted) return;
          const v = await this.judge(file, signal);
          if (v.verdict === 'allow') s.allowed++;
          else if (v.verdict === 'deny') {
            s.denied++;
            if (s.denials.length < 100) s.denials.push(v);
          } else if (v.verdict === 'pending') s.pending++;
          else s.errors++;
        } finally {
          this.slots.release();
        }
        s.done++;
        if (Date.now() - lastReport >= 100 || s.done === s.total) {
          lastReport = Date.now();
          onProgress(progressOf(s));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, files.length) }, worker));
    s.ms = Date.now() - started;
    return s;
  }

  /** Every regular file below `root`, without following symlinks; at most maxFiles. */
  private async walk(root: string, signal: AbortSignal): Promise<{ files: string[]; truncated: boolean }> {
    const files: string[] = [];
    const dirs = [root];
    while (dirs.length > 0 && !signal.aborted) {
      const dir = dirs.pop()!;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        continue; // vanished or unreadable while we walked
      }
      for (const e of entries) {
        if (e.isDirectory()) dirs.push(join(dir, e.name));
        else if (e.isFile()) {
          if (files.length >= this.maxFiles) return { files, truncated: true };
          files.push(join(dir, e.name));
        }
      }
    }
    return { files, truncated: false };
  }

  /** One file: a machine judges it; its verdict notice answers. */
  async judge(path: string, signal: AbortSignal): Promise<FileVerdict> {
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO swapped in after the walk must not hang us; O_NOFOLLOW: nor a symlink.
      fd = await openFd(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
    } catch (err) {
      return { path, verdict: 'error', reason: (err as Error).message };
    }
    let key: string;
    try {
      const st = await fstatFd(fd);
      if (!st.isFile()) throw new Error('not a regular file');
      // Outside every guard nothing gates the file: a verdict (and a tag) there would claim what nobody enforces.
      if (!this.control.covers(fd)) throw new Error('not under any guard: not judged');
      key = `${st.dev}:${st.ino}`;
    } catch (err) {
      closeQuiet(fd);
      return { path, verdict: 'error', reason: (err as Error).message };
    }
    const timeoutMs = this.control.config().pool.scanTimeout * 2 + 5000;
    const verdict = this.waiters.wait(key, timeoutMs, signal); // before judge(): the verdict may come at once
    try {
      this.control.judge(fd); // takes the fd
    } catch (err) {
      return { path, verdict: 'error', reason: (err as Error).message };
    }
    const n = await verdict;
    if (!n) return { path, verdict: 'pending', reason: 'no verdict yet (being written, or a scanner is slow)' };
    const out: FileVerdict = { path, verdict: n['verdict'] === 'allow' ? 'allow' : n['verdict'] === 'deny' ? 'deny' : 'error' };
    if (typeof n['decidedBy'] === 'string') out.decidedBy = n['decidedBy'];
    if (typeof n['reason'] === 'string') out.reason = n['reason'];
    else if (typeof n['error'] === 'string') out.reason = n['error'];
    return out;
  }
}

const progressOf = (s: ScanProgress): ScanProgress => ({ done: s.done, total: s.total, allowed: s.allowed, denied: s.denied, errors: s.errors });

function closeQuiet(fd: number) {
  try {
    closeSync(fd);
  } catch {
    /* closed */
  }
}
