// Overview — the limits a config value meets where it is used, checked once at load (file:line:col) instead of
// where they bite: a timer that node clamps to 1 ms, a deadline the native gate refuses, descriptors the process
// cannot open.
import { readFileSync } from 'node:fs';

/** Node timers cannot wait longer (a longer delay is clamped to 1 ms, with only a TimeoutOverflowWarning). */
export const TIMER_MAX_MS = 2 ** 31 - 1;
/** The native gate's bound for one event's deadline (native/fanotify/gate.cc): a kernel holding an opener. */
export const DEADLINE_MAX_MS = 3_600_000;
/** Descriptors besides waiting events: tag work, live machines, control-socket clients, pool, mounts, logs. */
export const FD_RESERVE = 128;

/** The soft RLIMIT_NOFILE of this process (from /proc/self/limits; node has no getrlimit), or undefined. */
export function openFileLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'latin1'))?.[1];
    if (line === undefined) return undefined;
    return line === 'unlimited' ? Number.POSITIVE_INFINITY : Number(line);
  } catch {
    return undefined;
  }
}

/** Why `maxPending` waiting events (one fd each) do not fit this process's fd limit, or undefined if they do. */
export function fdBudgetProblem(maxPending: number, limit = openFileLimit()): string | undefined {
  if (limit === undefined || maxPending + FD_RESERVE <= limit) return undefined;
  const fits = Math.max(0, limit - FD_RESERVE);
  return (
    `${maxPending} waiting events hold ${maxPending} fds, plus ${FD_RESERVE} for the rest, but this process may open ${limit} ` +
    `(RLIMIT_NOFILE): ${fits > 0 ? `set gate.maxPending to at most ${fits}, or ` : ''}raise the limit (ulimit -n, systemd LimitNOFILE=)`
  );
}
