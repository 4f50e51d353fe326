// Bounded waits for tests. Each one waits on something the test can observe — a promise settling, a counter or a
// line (a condition), a process held by fanotify (its kernel stack), the clock passing a given instant — and FAILS
// the test with an error that names what it waited for when its bound passes. None of them returns quietly at the
// bound, and none sleeps for a fixed time: a fixed sleep is either too short on a loaded machine or wasted time.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Resolves once `cond` holds (checked every `everyMs`); rejects naming `what` after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `p`, or a rejection naming `what` once `timeoutMs` passed without it settling. */
export async function within<T>(what: string, p: Promise<T>, timeoutMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once the wall clock is past `epochMs` (a lease's end, a tag's slack): the instant is the event. */
export async function clockPast(epochMs: number): Promise<void> {
  while (Date.now() <= epochMs) await new Promise((r) => setTimeout(r, Math.max(1, epochMs - Date.now() + 1)));
}

/**
 * Where a fanotify accessor sleeps until its permission event is answered: the top frame of its kernel stack
 * (fanotify_get_response, inlined into fanotify_handle_event on 6.18). Notification events never sleep there.
 */
const FANOTIFY_WAIT = /^\[<[0-9a-f]+>\] fanotify_(get_response|handle_event)\b/;

/** x86_64 and aarch64 syscall numbers of the accesses a gate holds. */
const SYSCALLS: Record<string, Record<string, number>> = {
  x64: { read: 0, pread64: 17, readv: 19, openat: 257, execve: 59, mmap: 9 },
  arm64: { read: 63, pread64: 67, readv: 65, openat: 56, execve: 221, mmap: 222 },
};

export interface Held {
  /** The syscall it is held in (read, openat, ...), or its number if not in the table. */
  syscall: string;
  /** For fd-taking syscalls: the path of that fd, as /proc shows it. */
  path?: string;
}

/** Whether a thread of `pid` sleeps in the kernel waiting for a fanotify answer, and in which syscall. */
export function heldByFanotify(pid: number): Held | null {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return null; // gone
  }
  for (const tid of tids) {
    try {
      if (!FANOTIFY_WAIT.test(readFileSync(`/proc/${pid}/task/${tid}/stack`, 'utf8'))) continue;
      const [nr, arg0] = readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').trim().split(' ');
      const table = SYSCALLS[process.arch] ?? {};
      const name = Object.keys(table).find((k) => table[k] === Number(nr)) ?? String(nr);
      const held: Held = { syscall: name };
      if (name !== 'openat' && name !== 'execve' && arg0 !== undefined) {
        try {
          held.path = readlinkSync(`/proc/${pid}/fd/${Number(arg0)}`);
        } catch {
          /* no such fd (mmap's first argument is an address) */
        }
      }
      return held;
    } catch {
      /* the thread ended while we looked */
    }
  }
  return null;
}

/**
 * Resolves once process `pid` is held by a fanotify permission event (its kernel stack shows the wait), in
 * `syscall` if given; rejects naming `what` after `timeoutMs`. The positive form of "it has not finished yet".
 */
export async function waitHeld(pid: number, what: string, opts: { syscall?: string | string[]; timeoutMs?: number } = {}): Promise<Held> {
  const syscalls = opts.syscall === undefined ? undefined : ([] as string[]).concat(opts.syscall);
  let held: Held | null = null;
  await waitFor(`${what} (pid ${pid} held by fanotify${syscalls ? ` in ${syscalls.join(' or ')}` : ''})`, () => {
    held = heldByFanotify(pid);
    return held !== null && (syscalls === undefined || syscalls.includes(held.syscall));
  }, opts.timeoutMs ?? 10_000);
  return held!;
}
