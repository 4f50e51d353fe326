// Overview — the books of native lane batches (lane-worker.ts): what the main thread would have recorded for each
// file it judged (src/daemon/costs.ts rows, the scan-duration histogram), summed in the worker and sent as one
// message at most every FLUSH_MS. The main thread is never told of a lane file one by one, nor woken per batch: at one
// reader a batch is one file, and a message per batch cost the main thread a wake-up per file (bench/cold, session 12:
// 45–55 µs of main-thread CPU per cold file, files/s 0.6×). Stats lag by FLUSH_MS at most.
//
// Owns: the sums (per scanner, per path, per executable, per uid), the worker's pid → executable cache, the flush.
// Must not: read /proc per file (one readlink per accessor process, cached as costs.ts caches it), or decide anything.
import { readlinkSync } from 'node:fs';
import { addCosts, type CostRow } from '../daemon/costs.js';
import { SCAN_BUCKETS_S, type ScanHistogram } from '../metrics/scan-durations.js';
import type { JudgedFile } from './tasks.js';

/** One row's additions: a costs.ts row without its key. */
export type BookRow = Omit<CostRow, 'key'>;

/** One batch's books, as posted to the main thread (ScanPool onLaneBooks). */
export interface LaneBooks {
  /** Scan durations per scanner, bucketed as ScanDurations keeps them. */
  durations: Record<string, ScanHistogram>;
  /** Files concluded here: their rows, by path, executable and uid. */
  path: [string, BookRow][];
  process: [string, BookRow][];
  uid: [string, BookRow][];
  /** Files handed to JS after scans here: their scans (path, ms), charged at JS's verdict (costs.ts scanned). */
  unpaid: [string, number][];
}

const who = new Map<number, { exe: string; until: number }>();

/** The executable of an accessor, as costs.ts names it; asked while it still waits (it may be gone once answered). */
export function exeOf(pid: number): string {
  const now = Date.now();
  const hit = who.get(pid);
  if (hit && hit.until > now) return hit.exe; // pids are reused: trusted a few seconds only, as costs.ts does
  let exe = `pid ${pid}`;
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch {
    /* gone, or a kernel thread */
  }
  if (who.size > 4096) who.clear();
  who.set(pid, { exe, until: now + 5000 });
  return exe;
}

const emptyRow = (): BookRow => ({ judged: 0, scans: 0, scanMs: 0, waitedMs: 0, waits: 0, denied: 0 });

function rowOf(rows: Map<string, BookRow>, key: string): BookRow {
  let r = rows.get(key);
  if (!r) rows.set(key, (r = emptyRow()));
  return r;
}

function addRows(into: [string, BookRow][], rows: Map<string, BookRow>) {
  for (const [k, r] of into) addCosts(rowOf(rows, k), r);
}

/** What waits to be sent: the batches' books since the last flush, merged. */
let kept: { durations: Record<string, ScanHistogram>; path: Map<string, BookRow>; process: Map<string, BookRow>; uid: Map<string, BookRow>; unpaid: [string, number][] } | undefined;
let flushTimer: NodeJS.Timeout | undefined;
export const FLUSH_MS = 250;

/** Keep one batch's books; `send` gets the merged books of all batches kept, at most every FLUSH_MS. */
export function keepBooks(books: LaneBooks, send: (books: LaneBooks) => void): void {
  kept ??= { durations: {}, path: new Map(), process: new Map(), uid: new Map(), unpaid: [] };
  for (const [name, h] of Object.entries(books.durations)) {
    const t = (kept.durations[name] ??= { counts: new Array<number>(SCAN_BUCKETS_S.length + 1).fill(0), sumSeconds: 0, count: 0 });
    h.counts.forEach((c, i) => (t.counts[i] = (t.counts[i] ?? 0) + c));
    t.sumSeconds += h.sumSeconds;
    t.count += h.count;
  }
  addRows(books.path, kept.path);
  addRows(books.process, kept.process);
  addRows(books.uid, kept.uid);
  for (const u of books.unpaid) kept.unpaid.push(u);
  if (flushTimer) return;
  flushTimer = setTimeout(() => {
    flushTimer = undefined;
    const k = kept!;
    kept = undefined;
    send({ durations: k.durations, path: [...k.path], process: [...k.process], uid: [...k.uid], unpaid: k.unpaid });
  }, FLUSH_MS);
  flushTimer.unref(); // a worker that ends loses at most FLUSH_MS of stats, never an answer
}

function observe(durations: Record<string, ScanHistogram>, name: string, seconds: number) {
  const h = (durations[name] ??= { counts: new Array<number>(SCAN_BUCKETS_S.length + 1).fill(0), sumSeconds: 0, count: 0 });
  let i = 0;
  while (i < SCAN_BUCKETS_S.length && seconds > SCAN_BUCKETS_S[i]!) i++;
  h.counts[i]!++;
  h.sumSeconds += seconds;
  h.count++;
}

/**
 * The books of one batch: `files` as judged (the concluded ones carry `laneWaits`, the events answered here as
 * [pid, uid, waitedUs, ...]). Undefined when there is nothing to tell.
 */
export function booksOf(files: readonly JudgedFile[]): LaneBooks | undefined {
  const durations: Record<string, ScanHistogram> = {};
  const path = new Map<string, BookRow>();
  const process = new Map<string, BookRow>();
  const uid = new Map<string, BookRow>();
  const unpaid: [string, number][] = [];
  let any = false;
  for (const f of files) {
    let ms = 0;
    for (const s of f.scans) {
      observe(durations, s.name, s.totalMs / 1000);
      ms += s.totalMs;
      any = true;
    }
    const waits = f.laneWaits;
    if (!waits) {
      if (f.scans.length > 0) unpaid.push([f.path, ms]);
      continue;
    }
    any = true;
    const p = rowOf(path, f.path);
    p.judged++;
    p.scans += f.scans.length;
    p.scanMs += ms;
    // As costs.ts judged(): the file, and its scans, count once per executable and uid that waited for it.
    const charged = new Set<BookRow>();
    for (let i = 0; i < waits.length; i += 3) {
      const rows = [rowOf(process, exeOf(waits[i]!)), rowOf(uid, waits[i + 1]! >= 0 ? String(waits[i + 1]) : '?')];
      for (const r of rows) {
        r.waits++;
        r.waitedMs += waits[i + 2]! / 1000;
        if (charged.has(r)) continue;
        charged.add(r);
        r.judged++;
        r.scans += f.scans.length;
        r.scanMs += ms;
      }
    }
  }
  return any ? { durations, path: [...path], process: [...process], uid: [...uid], unpaid } : undefined;
}
