// Who holds a scanning lease, and whether that holder still exists. A lease names its holder as
//   <hostname>:<pid>:<start>:<boot id>
// where <start> is the process's start time (clock ticks since boot, field 22 of /proc/<pid>/stat) and <boot id>
// the kernel's /proc/sys/kernel/random/boot_id. A pid alone is not a name: pids are reused, and a daemon restarted
// after SIGKILL often gets a nearby one. Older leases name only <hostname>:<pid> and are still read.
//
// What a holder is, seen from here:
// - 'gone': it ran on this host (same hostname and boot) and that process no longer exists, or it ran before the
//   last boot of this host — its lease is void at once, whatever its `until` says;
// - 'alive': a process of this host that still runs (or an old-style lease whose pid runs: it may be a reused pid,
//   so it is treated as alive, and waiting on it is bounded like any foreign lease);
// - 'foreign': another host (shared filesystem); only its `until` and our bounded wait apply.
// And, for another daemon on this kernel (docs/sharedfs.md), whether an accessor the kernel names IS a lease's holder
// (isHolderProcess): same boot id, same pid, same process start time; host names are not compared, since two
// daemons of one kernel may run in UTS namespaces of their own.
// Voiding a lease wrongly costs a duplicate scan, never a wrong verdict: the result write is conditional (the
// holder's finish() then finds the lease lost and drops its result).
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export type HolderState = 'gone' | 'alive' | 'foreign';

export interface HolderName {
  host: string;
  pid: number;
  /** Process start time in clock ticks since boot; absent in old-style names. */
  start?: string;
  bootId?: string;
}

const BOOT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let localBootId: string | undefined;
function bootId(): string {
  localBootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  return localBootId;
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised comm, which may hold spaces), or undefined if no such pid. */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19]; // fields[0] is field 3 (state)
}

/** This process's name as a lease holder. */
export function selfHolder(host = hostname(), pid = process.pid): string {
  return `${host}:${pid}:${processStartTime(pid) ?? '0'}:${bootId()}`;
}

export function parseHolder(holder: string): HolderName | undefined {
  const parts = holder.split(':');
  if (parts.length === 4 && /^[1-9][0-9]*$/.test(parts[1]!) && /^[0-9]+$/.test(parts[2]!) && BOOT_ID.test(parts[3]!)) {
    return { host: parts[0]!, pid: Number(parts[1]), start: parts[2]!, bootId: parts[3]! };
  }
  if (parts.length === 2 && /^[1-9][0-9]*$/.test(parts[1]!)) return { host: parts[0]!, pid: Number(parts[1]) };
  return undefined;
}

export function holderState(holder: string, localHost = hostname()): HolderState {
  const h = parseHolder(holder);
  if (!h || h.host !== localHost) return 'foreign';
  if (h.bootId === undefined) return processStartTime(h.pid) === undefined ? 'gone' : 'alive';
  if (h.bootId !== bootId()) return 'gone'; // written before this host last booted: its holder died with it
  return processStartTime(h.pid) === h.start ? 'alive' : 'gone';
}

/**
 * Whether `holder` names process `pid` of this kernel: written during this boot, by a process with this pid and this
 * start time (a reused pid has another). Old-style names (no start time) never match: they cannot be checked.
 * A holder in another pid namespace names a pid of its own namespace: it does not match, and nothing passes.
 */
export function isHolderProcess(holder: string, pid: number): boolean {
  const h = parseHolder(holder);
  if (!h || h.pid !== pid || h.start === undefined || h.bootId !== bootId()) return false;
  return processStartTime(pid) === h.start;
}
