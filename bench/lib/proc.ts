// What /proc says about a daemon under test: CPU time, resident memory, and the fanotify marks it holds.
import { createReadStream } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';

// USER_HZ: 100 on every Linux that Node supports (the kernel exports clock ticks in this unit regardless of HZ).
const CLK_TCK = 100;

/** User + system CPU seconds of a process, all its threads (the pool's workers included). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
  // The command name may hold spaces and parentheses: fields are counted after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14 and 15 of stat(5))
}

/**
 * User + system CPU seconds of one thread of a process: the main thread is the one whose tid is the pid (its JS,
 * the event dispatch, the inode machines); the pool's workers and the gate's reader thread are not counted.
 */
export async function threadCpuSeconds(pid: number, tid = pid): Promise<number> {
  const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** User + system CPU seconds of every thread of a process, by tid, with the thread's name (comm). */
export async function threadsCpu(pid: number): Promise<Map<number, { name: string; cpuS: number }>> {
  const out = new Map<number, { name: string; cpuS: number }>();
  for (const t of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    // A thread may end between the listing and the read: it is simply left out.
    const stat = await readFile(`/proc/${pid}/task/${t}/stat`, 'latin1').catch(() => '');
    if (!stat) continue;
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(t), { name, cpuS: (Number(fields[11]) + Number(fields[12])) / CLK_TCK });
  }
  return out;
}

/**
 * CPU seconds per kind of thread between two threadsCpu() snapshots: the main thread (tid = pid), the gate's reader
 * thread ('blessd-gate'), its answer thread ('blessd-answer': the response writes that wake the accessors), each pool
 * worker ('blessd-pool', in tid order: pool1, pool2, ...), and the rest (node's and V8's own helpers: GC, compiler,
 * libuv; the gate's walk, map-sweep and unmark threads). A thread born between the snapshots counts from zero.
 */
export function threadSplit(pid: number, before: Map<number, { name: string; cpuS: number }>, after: Map<number, { name: string; cpuS: number }>): Record<string, number> {
  const out: Record<string, number> = { main: 0, gate: 0, answer: 0, other: 0 };
  let pools = 0;
  for (const [tid, t] of [...after].sort((a, b) => a[0] - b[0])) {
    const d = t.cpuS - (before.get(tid)?.cpuS ?? 0);
    if (tid === pid) out.main! += d;
    else if (t.name === 'blessd-gate') out.gate! += d;
    else if (t.name === 'blessd-answer') out.answer! += d;
    else if (t.name === 'blessd-pool') out[`pool${++pools}`] = d;
    else out.other! += d;
  }
  return out;
}

/** Resident set size in bytes (VmRSS), and its high-water mark (VmHWM). */
export async function memory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'latin1');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

export interface MarkCount {
  groups: number;
  /** Inode marks: the ignore marks of the verdict cache (and tree-guard directory marks). */
  inode: number;
  /** Filesystem (sdev) and mount marks. */
  fsOrMount: number;
}

/** Count the marks of every fanotify group a process holds, from /proc/<pid>/fdinfo (one line per mark). */
export async function fanotifyMarks(pid: number): Promise<MarkCount> {
  const out: MarkCount = { groups: 0, inode: 0, fsOrMount: 0 };
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (target !== 'anon_inode:[fanotify]') continue;
    out.groups++;
    const lines = createInterface({ input: createReadStream(`/proc/${pid}/fdinfo/${fd}`, { highWaterMark: 1 << 20 }), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.startsWith('fanotify ino:')) out.inode++;
      else if (line.startsWith('fanotify sdev:') || line.startsWith('fanotify mnt_id:')) out.fsOrMount++;
    }
  }
  return out;
}

/** Samples a process's CPU over an interval: start(), then stop() gives seconds of CPU and the share of one core. */
export function cpuMeter(pid: number) {
  let cpu0 = 0;
  let t0 = 0;
  return {
    async start() {
      cpu0 = await cpuSeconds(pid);
      t0 = performance.now();
    },
    async stop(): Promise<{ cpuS: number; wallS: number; cores: number }> {
      const cpuS = (await cpuSeconds(pid)) - cpu0;
      const wallS = (performance.now() - t0) / 1000;
      return { cpuS, wallS, cores: cpuS / wallS };
    },
  };
}
