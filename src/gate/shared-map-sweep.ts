// Overview — the shared-mapping sweep. A file that was blessed (silent: an ignore mark) before someone opened it for
// write and mapped it MAP_SHARED + PROT_WRITE raised no event at all, and its stores raise none either: other
// processes read whatever is stored until munmap (docs/kernel.md, exp11). Nothing in fanotify tells; /proc does.
// Every `periodMs` this walks /proc/<pid>/maps of every process and hands the native gate each shared writable
// mapping of a file on a guarded filesystem (`flagSharedMap`), which drops its ignore mark and judges it anew at
// every access from then on — so the window is the period, not the mapping's life. It is also what ends that: an
// inode no sweep finds any more (and no mmap since its start) is let go (`pruneSharedMaps`).
// Owns: the timer, one sweep at a time, the parsing of maps lines.
// Must not: open a mapped file (the native side resolves the map_files link, no open, no event), block the main
// thread (async reads only), or look at our own process.
import { open, readdir } from 'node:fs/promises';

export interface SweepResult {
  processes: number;
  /** Shared writable mappings of files on guarded filesystems. */
  mappings: number;
  /** Of those, inodes the native gate was not following yet. */
  flagged: number;
  ms: number;
}

/** st_dev as the kernel and glibc's makedev encode it, from the hex major:minor that /proc/<pid>/maps prints. */
export function makedev(major: number, minor: number): number {
  return (major & 0xfff) * 0x100 + Math.floor(major / 0x1000) * 2 ** 44 + (minor & 0xff) + Math.floor(minor / 0x100) * 2 ** 20;
}

/** The shared writable file mappings in one maps text, on the given devices: map_files link names and inodes. */
export function sharedWritable(maps: string, devs: ReadonlySet<number>): { range: string; dev: number; ino: number }[] {
  const out: { range: string; dev: number; ino: number }[] = [];
  for (const line of maps.split('\n')) {
    // "lo-hi perms offset major:minor inode path"; perms like "rw-s": writable and shared, nothing else matters.
    // Most lines are private mappings: look at the two perm letters before splitting the line (main thread).
    const sp = line.indexOf(' ');
    if (sp < 0 || line.charCodeAt(sp + 2) !== 0x77 /* w */ || line.charCodeAt(sp + 4) !== 0x73 /* s */) continue;
    const f = line.split(/\s+/, 5);
    if (f.length < 5 || f[1][1] !== 'w' || f[1][3] !== 's') continue;
    const [major, minor] = f[3].split(':').map((x) => parseInt(x, 16));
    const dev = makedev(major, minor);
    const ino = Number(f[4]);
    if (ino > 0 && devs.has(dev)) out.push({ range: f[0], dev, ino });
  }
  return out;
}

/** What the sweep asks of the native gate (Gate.native: flagSharedMap, pruneSharedMaps). */
export interface SharedMapTarget {
  /** Follow the inode behind /proc/<pid>/map_files/<range>: 1 newly, 0 already (its time refreshed), -1 not. */
  flagSharedMap(mapFile: string): number;
  /** No argument: the clock a sweep starts at. With it: stop following inodes not seen since then. */
  pruneSharedMaps(started?: number): number;
}

// One buffer per sweep for every maps file (never shared between sweeps: the thread pool writes into it while
// another sweep's continuation could read it): /proc reports size 0, so readFile would grow its way up in small
// reads, each a thread-pool round trip. A process's maps rarely pass a few hundred KiB.
async function readMaps(pid: string, chunk: Buffer): Promise<string> {
  let fh;
  try {
    fh = await open(`/proc/${pid}/maps`, 'r');
    let text = '';
    for (;;) {
      const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) return text;
      text += chunk.toString('latin1', 0, bytesRead);
    }
  } catch {
    return ''; // gone, or not ours to read
  } finally {
    await fh?.close().catch(() => {});
  }
}

/** One sweep over every process but `self`; inodes no longer mapped shared-writable are let go at its end. */
export async function sweepSharedMaps(devs: ReadonlySet<number>, gate: SharedMapTarget, self = process.pid, cancelled = () => false): Promise<SweepResult> {
  const t0 = performance.now();
  const r: SweepResult = { processes: 0, mappings: 0, flagged: 0, ms: 0 };
  if (devs.size === 0) return r;
  const started = gate.pruneSharedMaps();
  const chunk = Buffer.allocUnsafe(1 << 20);
  for (const name of await readdir('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57 || Number(name) === self) continue;
    const maps = await readMaps(name, chunk);
    if (cancelled()) return r; // the gate may be closed by now
    if (!maps) continue; // gone, or a kernel thread
    r.processes++;
    // Nearly every process has no shared writable mapping: two substring searches skip it without splitting lines.
    if (maps.indexOf('w-s ') < 0 && maps.indexOf('wxs ') < 0) continue;
    for (const m of sharedWritable(maps, devs)) {
      r.mappings++;
      if (gate.flagSharedMap(`/proc/${name}/map_files/${m.range}`) === 1) r.flagged++;
    }
  }
  // Every process was looked at after `started`: an inode followed since before it and not found is unmapped (one
  // mapped meanwhile was either found, or seen by the reader thread after `started`).
  gate.pruneSharedMaps(started);
  r.ms = performance.now() - t0;
  return r;
}

export interface SharedMapSweep {
  /** No more sweeps; resolves when the running one (if any) has stopped, or after 1 s: a read of some process's maps
   * can wait on its mmap lock, and a stop must not wait on a process. */
  stop(): Promise<void>;
  /** The last sweep's result (status, tests). */
  last(): SweepResult | undefined;
}

export function startSharedMapSweep(o: {
  periodMs: number;
  devs: () => ReadonlySet<number>;
  gate: SharedMapTarget;
  onError: (err: unknown) => void;
  onFlagged: (r: SweepResult) => void;
}): SharedMapSweep {
  let stopped = false;
  let running: Promise<void> | undefined;
  let last: SweepResult | undefined;
  const tick = () => {
    if (stopped || running) return;
    running = sweepSharedMaps(o.devs(), o.gate, process.pid, () => stopped)
      .then((r) => {
        last = r;
        if (r.flagged > 0) o.onFlagged(r);
      }, o.onError)
      .finally(() => (running = undefined));
  };
  const timer = setInterval(tick, o.periodMs);
  timer.unref();
  tick();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([running, new Promise<void>((r) => (bound = setTimeout(r, 1000)))]);
      clearTimeout(bound);
    },
    last: () => last,
  };
}
