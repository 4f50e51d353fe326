// Who costs what, since start — the statistics commercial on-access scanners give: per process (its executable),
// per path and per uid, the files judged, the scans and their time, the time accessors waited, and denials.
// Bounded: each table keeps at most `cap` rows and, when full, drops the cheapest half (a flood of one-off paths
// cannot grow memory). Attribution reads /proc/<pid> once per pid (cached), on the slow path only: the fast path
// (native thread) never reaches here.
import { readFileSync, readlinkSync } from 'node:fs';

export interface CostRow {
  key: string;
  judged: number;
  scans: number;
  scanMs: number;
  waitedMs: number;
  waits: number;
  denied: number;
}

export type CostAxis = 'process' | 'path' | 'uid';

class Table {
  private readonly rows = new Map<string, CostRow>();
  constructor(private readonly cap: number) {}

  row(key: string): CostRow {
    let r = this.rows.get(key);
    if (!r) {
      if (this.rows.size >= this.cap) this.shrink();
      r = { key, judged: 0, scans: 0, scanMs: 0, waitedMs: 0, waits: 0, denied: 0 };
      this.rows.set(key, r);
    }
    return r;
  }

  top(n: number, by: keyof Omit<CostRow, 'key'>): CostRow[] {
    return [...this.rows.values()].sort((a, b) => b[by] - a[by] || a.key.localeCompare(b.key)).slice(0, n);
  }

  private shrink() {
    const sorted = [...this.rows.values()].sort((a, b) => weight(a) - weight(b));
    for (const r of sorted.slice(0, Math.ceil(sorted.length / 2))) this.rows.delete(r.key);
  }
}

const weight = (r: CostRow) => r.scanMs + r.waitedMs + r.judged + r.denied * 1000;

interface Who {
  exe: string;
  uid: string;
  until: number;
}

export class CostBook {
  private readonly tables: Record<CostAxis, Table>;
  private readonly who = new Map<number, Who>();

  constructor(cap = 10_000) {
    this.tables = { process: new Table(cap), path: new Table(cap), uid: new Table(cap) };
  }

  /** A waiting access was answered after `ms`. */
  waited(pid: number, ms: number, denied: boolean): void {
    const w = this.whoIs(pid);
    for (const r of [this.tables.process.row(w.exe), this.tables.uid.row(w.uid)]) {
      r.waits++;
      r.waitedMs += ms;
      if (denied) r.denied++;
    }
  }

  /** One scan of `path` took `ms`; `pids` are the accessors waiting for it (none for a background scan). */
  scanned(path: string, ms: number, pids: readonly number[]): void {
    const p = this.tables.path.row(path);
    p.scans++;
    p.scanMs += ms;
    for (const pid of new Set(pids)) {
      const w = this.whoIs(pid);
      for (const r of [this.tables.process.row(w.exe), this.tables.uid.row(w.uid)]) {
        r.scans++;
        r.scanMs += ms;
      }
    }
  }

  /** A verdict on `path`, for the accessors that were waiting. */
  judged(path: string, verdict: 'allow' | 'deny', pids: readonly number[]): void {
    const p = this.tables.path.row(path);
    p.judged++;
    if (verdict === 'deny') p.denied++;
    for (const pid of new Set(pids)) {
      const w = this.whoIs(pid);
      this.tables.process.row(w.exe).judged++;
      this.tables.uid.row(w.uid).judged++;
    }
  }

  top(axis: CostAxis, n: number, by: keyof Omit<CostRow, 'key'> = 'scanMs'): CostRow[] {
    return this.tables[axis].top(n, by);
  }

  private whoIs(pid: number): Who {
    const now = Date.now();
    const hit = this.who.get(pid);
    // Pids are reused: trust an entry for a few seconds only.
    if (hit && hit.until > now) return hit;
    let exe = `pid ${pid}`;
    let uid = '?';
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      /* gone, or a kernel thread */
    }
    try {
      uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? '?';
    } catch {
      /* gone */
    }
    if (this.who.size > 4096) this.who.clear();
    const w = { exe, uid, until: now + 5000 };
    this.who.set(pid, w);
    return w;
  }
}
