// Question 2 — the cold path: how long does the first read of an unscanned file wait, and where does the time go?
// Files of 4 KiB to 64 MiB, never scanned, read once each (open + one 4 KiB read + close) by reader processes, with
// 1..N readers at once. Every access is split in three, per file:
//   scan  — the signature actor's own time in its worker (the work that has to happen),
//   pool  — the scan pool around it: queue wait, hop to the worker and back (the slowest of the stack's scanners),
//   rest  — everything else: kernel → gate → JS → inode machine → tags read, lease and result written → answer.
// "else" = pool + rest: what blessd adds to the scan. It has to stay small and bounded as load grows; the pool
// part grows with the queue once the readers outnumber the worker threads.
// Percentiles are exact (every sample kept and sorted, no buckets); the full distribution of total and else per
// row is written in HdrHistogram's .hgrm text format next to the JSON.
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { benchFsKind, makeBenchFs } from './lib/benchfs.js';
import { Blessd, type ScanTime } from './lib/blessd.js';
import { barChart, lineChart, writeChart } from './lib/chart.js';
import { access, buildTools, makeFiles, type Tools } from './lib/native.js';
import { cpuSeconds, threadCpuSeconds, threadsCpu, threadSplit } from './lib/proc.js';
import { envInt, envInts, FULL, hgrm, printTable, ratio, requireRoot, summarize, us, writeResult, writeText, type Summary, note, runMain } from './lib/report.js';
import { writeSignatures } from './lib/signatures.js';
import { clearTags } from './lib/tags.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SETS = [
  { name: '4 KiB', dir: 's4k', size: 4 * KiB, count: envInt('BENCH_COLD_4K', FULL ? 4000 : 1000) },
  { name: '64 KiB', dir: 's64k', size: 64 * KiB, count: envInt('BENCH_COLD_64K', FULL ? 1000 : 300) },
  { name: '1 MiB', dir: 's1m', size: MiB, count: envInt('BENCH_COLD_1M', FULL ? 400 : 80) },
  { name: '16 MiB', dir: 's16m', size: 16 * MiB, count: envInt('BENCH_COLD_16M', FULL ? 48 : 12) },
  { name: '64 MiB', dir: 's64m', size: 64 * MiB, count: envInt('BENCH_COLD_64M', FULL ? 16 : 4) },
].filter((s) => s.count > 0);
const LOADS = envInts('BENCH_COLD_READERS', FULL ? [1, 2, 4, 8] : [1, 4]);
const THREADS = envInt('BENCH_THREADS', 2);

interface Row {
  readers: number;
  set: string;
  total: Summary;
  scan: Summary;
  pool: Summary;
  rest: Summary;
  else: Summary;
  baseP50: number;
  unmatched: number;
  cpuS: number;
  /** The daemon's main thread alone (JS: dispatch, machines, tags, answers). */
  mainCpuS: number;
  /** CPU seconds per thread kind (main, gate, pool1.., other): proc.ts threadSplit. */
  threads: Record<string, number>;
  wallS: number;
  /** Files per judge message to the pool (the daemon's judgeQueue counters over the row). */
  perBatch: number;
  /** Files a pool worker concluded itself (native lane). */
  laneConcluded: number;
  /** Voluntary context switches of the main thread over the row (it slept and was woken). */
  mainWakes: number;
}

/** Run `readers` processes over disjoint slices of one set at once; per-file latencies in file order. */
async function readAll(tools: Tools, dir: string, count: number, readers: number, scratch: string): Promise<Float64Array> {
  const per = Math.ceil(count / readers);
  const parts = await Promise.all(
    Array.from({ length: readers }, (_, i) => {
      const start = i * per;
      const n = Math.min(per, count - start);
      return n > 0 ? access(tools, { dir, start, count: n, samples: true, timeoutMs: 300_000 }, scratch) : null;
    }),
  );
  const out = new Float64Array(count);
  parts.forEach((p, i) => {
    if (!p) return;
    if (p.errors) throw new Error(`${p.errors} failed reads in ${dir}`);
    out.set(p.samples!, i * per);
  });
  return out;
}

/** Times the daemon's main thread went to sleep and was woken (voluntary context switches): each costs it a wake-up. */
function mainWakeups(pid: number): number {
  const m = /voluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'latin1'));
  return m ? Number(m[1]) : NaN;
}

/** Files read in a row (all of them, scanned or not: the rate of new files served). */
const filesIn = (r: Row) => SETS.find((s) => s.name === r.set)!.count;

async function main() {
  requireRoot('bench/cold');
  const kind = benchFsKind();
  const dataMiB = SETS.reduce((a, s) => a + (s.count * Math.max(s.size, 4 * KiB)) / MiB, 0);
  const fs = await makeBenchFs(kind, { sizeMiB: Math.ceil(dataMiB * 1.25 + 128), inodes: SETS.reduce((a, s) => a + s.count, 0) + 10_000 });
  const rows: Row[] = [];
  let blessd: Blessd | undefined;
  try {
    const tools = await buildTools(fs.base);
    for (const s of SETS) {
      await mkdir(join(fs.dir, s.dir));
      await makeFiles(tools, { dir: join(fs.dir, s.dir), count: s.count, size: s.size });
    }
    const db = await writeSignatures(join(fs.base, 'db'));
    const baseline = new Map<string, number>();
    for (const s of SETS) {
      await readAll(tools, join(fs.dir, s.dir), s.count, 1, fs.base); // page cache, dentries
      baseline.set(s.name, summarize(await readAll(tools, join(fs.dir, s.dir), s.count, 1, fs.base)).p50);
    }

    for (const readers of LOADS) {
      await clearTags(fs.dir);
      blessd = await Blessd.start({ guard: fs.dir, base: join(fs.base, 'blessd'), databases: db, threads: THREADS, recordScans: true });
      for (const s of SETS) {
        const dir = join(fs.dir, s.dir);
        const cpu0 = await cpuSeconds(blessd.pid);
        const main0 = await threadCpuSeconds(blessd.pid);
        const threads0 = await threadsCpu(blessd.pid);
        const st0 = await blessd.stats();
        const q0 = st0.judgeQueue;
        const wakes0 = mainWakeups(blessd.pid);
        const t0 = performance.now();
        const total = await readAll(tools, dir, s.count, readers, fs.base);
        const wallS = (performance.now() - t0) / 1000;
        const mainWakes = mainWakeups(blessd.pid) - wakes0;
        const cpuS = (await cpuSeconds(blessd.pid)) - cpu0;
        const mainCpuS = (await threadCpuSeconds(blessd.pid)) - main0;
        const threads = threadSplit(blessd.pid, threads0, await threadsCpu(blessd.pid));
        const st1 = await blessd.stats();
        const q1 = st1.judgeQueue;
        // Files a pool worker concluded itself (native/fanotify/lane.cc); 0 on a build without the lane.
        const laneConcluded = (st1.gate.laneConcluded ?? 0) - (st0.gate.laneConcluded ?? 0);
        const perBatch = (q1.sentFiles - q0.sentFiles) / Math.max(1, q1.sentBatches - q0.sentBatches);
        // Scans of this set: the signature actor's time, and the slowest pool call of the file's scanners.
        const byPath = new Map<string, { scan: number; wall: number }>();
        for (const t of (await blessd.scanTimes()) as ScanTime[]) {
          const e = byPath.get(t.path) ?? { scan: 0, wall: 0 };
          if (t.scanner === 'signature') e.scan += t.ms;
          e.wall = Math.max(e.wall, t.wallMs);
          byPath.set(t.path, e);
        }
        const scan: number[] = [];
        const pool: number[] = [];
        const rest: number[] = [];
        const other: number[] = [];
        const tot: number[] = [];
        let unmatched = 0;
        for (let i = 0; i < s.count; i++) {
          const e = byPath.get(join(dir, `f${String(i).padStart(7, '0')}`));
          tot.push(total[i]);
          if (!e) {
            // No pool call recorded: concluded in the native lane (lane_queue.cc: the main thread never sees it), or
            // a verdict found otherwise. Its read time still counts; only the scan/pool/rest split is unknown.
            unmatched++;
            continue;
          }
          const scanUs = e.scan * 1000;
          const wallUs = e.wall * 1000;
          scan.push(scanUs);
          pool.push(wallUs - scanUs);
          rest.push(total[i] - wallUs);
          other.push(total[i] - scanUs);
        }
        const row: Row = { readers, set: s.name, total: summarize(tot), scan: summarize(scan), pool: summarize(pool), rest: summarize(rest), else: summarize(other), baseP50: baseline.get(s.name)!, unmatched, cpuS, mainCpuS, threads, wallS, perBatch, mainWakes, laneConcluded };
        rows.push(row);
        const tag = `${s.dir}-r${readers}`;
        writeText(`cold-${tag}-total.hgrm`, hgrm(tot));
        writeText(`cold-${tag}-else.hgrm`, hgrm(other));
      }
      await blessd.stop();
      blessd = undefined;
    }

    printTable(
      `bench/cold: first read of unscanned files (open + 4 KiB read + close), ${SETS.map((s) => `${s.count} × ${s.name}`).join(', ')}; ${THREADS} pool threads; ${kind} image`,
      rows.map((r) => ({
        readers: r.readers,
        files: r.set,
        'total p50': us(r.total.p50),
        '× no daemon': ratio(r.total.p50, r.baseP50),
        'total p99': us(r.total.p99),
        'p99.9': us(r.total.p999),
        max: us(r.total.max),
        'scan p50': us(r.scan.p50),
        'scan p99': us(r.scan.p99),
        'else p50': us(r.else.p50),
        'else p99': us(r.else.p99),
        'else p99.9': us(r.else.p999),
        'else max': us(r.else.max),
        'else/total p50': `${((100 * r.else.p50) / r.total.p50).toFixed(0)}%`,
      })),
    );
    printTable(
      'bench/cold: "else" split — pool (queue + hop to the worker) and rest (gate, JS, inode machine, tags); µs',
      rows.map((r) => ({
        readers: r.readers,
        files: r.set,
        'pool p50': us(r.pool.p50),
        'pool p99': us(r.pool.p99),
        'pool max': us(r.pool.max),
        'rest p50': us(r.rest.p50),
        'rest p99': us(r.rest.p99),
        'rest p99.9': us(r.rest.p999),
        'rest max': us(r.rest.max),
        'daemon CPU s': r.cpuS.toFixed(2),
        'new files/s': (filesIn(r) / r.wallS).toFixed(0),
        'main-thread CPU/file': us((1e6 * r.mainCpuS) / filesIn(r)),
        'files/message': r.perBatch.toFixed(2),
        'main wake-ups/file': (r.mainWakes / filesIn(r)).toFixed(2),
        'concluded in worker': `${Math.round((100 * r.laneConcluded) / filesIn(r))}%`,
        unmatched: r.unmatched,
      })),
    );
    printTable(
      'bench/cold: daemon CPU per file, by thread (µs of user + system CPU per file read; /proc/<pid>/task/*/stat)',
      rows.map((r) => {
        const perFile = (cpuS: number) => us((1e6 * cpuS) / filesIn(r));
        const pools = Object.keys(r.threads).filter((k) => k.startsWith('pool'));
        return {
          readers: r.readers,
          files: r.set,
          'all threads': perFile(r.cpuS),
          main: perFile(r.threads.main ?? 0),
          'gate reader': perFile(r.threads.gate ?? 0),
          'gate answers': perFile(r.threads.answer ?? 0),
          ...Object.fromEntries(pools.map((k) => [k, perFile(r.threads[k]!)])),
          'pool total': perFile(pools.reduce((a, k) => a + r.threads[k]!, 0)),
          'node/V8 other': perFile(r.threads.other ?? 0),
        };
      }),
    );
    note('µs unless marked; "× no daemon": total p50 against a plain read of the same (cached) files in this run');

    const charts = [
      writeChart(
        'cold-split',
        barChart({
          title: `Cold path, 1 reader: p50 of scan and of everything else (${kind})`,
          yLabel: 'µs (log)',
          categories: SETS.map((s) => s.name),
          series: [
            { name: 'scan (actor)', values: SETS.map((s) => rows.find((r) => r.readers === LOADS[0] && r.set === s.name)!.scan.p50) },
            { name: 'pool hop + queue', values: SETS.map((s) => Math.max(1, rows.find((r) => r.readers === LOADS[0] && r.set === s.name)!.pool.p50)) },
            { name: 'rest (gate, JS, tags)', values: SETS.map((s) => Math.max(1, rows.find((r) => r.readers === LOADS[0] && r.set === s.name)!.rest.p50)) },
          ],
          log: true,
        }),
      ),
      writeChart(
        'cold-else-p99',
        lineChart({
          title: 'Cold path: p99 of everything but the scan, as readers grow',
          yLabel: 'µs (log)',
          xLabel: 'parallel reader processes',
          x: LOADS,
          series: SETS.map((s) => ({ name: s.name, values: LOADS.map((n) => rows.find((r) => r.readers === n && r.set === s.name)!.else.p99) })),
          log: true,
        }),
      ),
      writeChart(
        'cold-rest-p99',
        lineChart({
          title: 'Cold path: p99 of gate + JS + tags (pool excluded), as readers grow',
          yLabel: 'µs (log)',
          xLabel: 'parallel reader processes',
          x: LOADS,
          series: SETS.map((s) => ({ name: s.name, values: LOADS.map((n) => Math.max(1, rows.find((r) => r.readers === n && r.set === s.name)!.rest.p99)) })),
          log: true,
        }),
      ),
    ];
    const file = writeResult('cold', { fs: kind, threads: THREADS, loads: LOADS, sets: SETS, percentiles: 'exact, from every sample', rows });
    console.log('written', file, ...charts);
  } finally {
    await blessd?.stop().catch(() => {});
    await fs.cleanup();
  }
}

runMain(main);
