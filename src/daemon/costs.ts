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

/** Add one row's counts to another's (a lane batch's books, src/pool/lane-books.ts, are summed this way too). */
export function addCosts(into: Omit<CostRow, 'key'>, add: Omit<CostRow, 'key'>): void {
  into.judged += add.judged;
  into.scans += add.scans;
  into.scanMs += add.scanMs;
  into.waits += add.waits;
  into.waitedMs += add.waitedMs;
  into.denied += add.denied;
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
  /**
   * Scans of a path not yet charged to anyone: a scan does not know who waits for it, the verdict does. Charged to
   * the accessors that waited for the path's next verdict (judged), then dropped. Bounded like the tables.
   */
  private readonly unpaid = new Map<string, { scans: number; scanMs: number }>();

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
    if (pids.length === 0) {
      if (this.unpaid.size >= 4096 && !this.unpaid.has(path)) this.unpaid.clear();
      const u = this.unpaid.get(path) ?? { scans: 0, scanMs: 0 };
      this.unpaid.set(path, { scans: u.scans + 1, scanMs: u.scanMs + ms });
    }
    for (const pid of new Set(pids)) {
      const w = this.whoIs(pid);
      for (const r of [this.tables.process.row(w.exe), this.tables.uid.row(w.uid)]) {
        r.scans++;
        r.scanMs += ms;
      }
    }
  }

  /** A verdict on `path`, for the accessors that were waiting: the file, and the scans it took, count for them. */
  judged(path: string, verdict: 'allow' | 'deny', pids: readonly number[]): void {
    const p = this.tables.path.row(path);
    p.judged++;
    if (verdict === 'deny') p.denied++;
    const owed = this.unpaid.get(path);
    this.unpaid.delete(path);
    const charged = new Set<CostRow>();
    for (const pid of new Set(pids)) {
      const w = this.whoIs(pid);
      for (const r of [this.tables.process.row(w.exe), this.tables.uid.row(w.uid)]) {
        // Two waiting processes of one executable (or uid) share the file: it counts once for that row.
        if (charged.has(r)) continue;
        charged.add(r);
        r.judged++;
        if (owed) {
          r.scans += owed.scans;
          r.scanMs += owed.scanMs;
        }
      }
    }
  }

  /**
   * A native lane batch's books (src/pool/lane-books.ts), summed in its worker: the files it concluded, their scans
   * and who waited for them; the scans of the files it handed to JS wait for JS's verdict, as scanned() keeps them.
   */
  addLane(b: { path: [string, Omit<CostRow, 'key'>][]; process: [string, Omit<CostRow, 'key'>][]; uid: [string, Omit<CostRow, 'key'>][]; unpaid: [string, number][] }): void {
    for (const axis of ['path', 'process', 'uid'] as const) {
      for (const [key, add] of b[axis]) {
        addCosts(this.tables[axis].row(key), add);
      }
    }
    for (const [path, ms] of b.unpaid) this.scanned(path, ms, []);
  }

  top(axis: CostAxis, n: number, by: keyof Omit<CostRow, 'key'> = 'scanMs'): CostRow[] {
    return this.tables[axis].top(n, by);
  }

  /**
   * Name an accessor now, while it still waits: a pool worker may answer it (lane.cc) and it may be gone by the time
   * its books are kept here. Cached per pid, so this is the readlink the answer would have cost anyway.
   */
  know(pid: number): void {
    this.whoIs(pid);
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
