// Question 3 — a file server under load: N reader processes over a mixed tree in which some files change.
// Each client reads random files whole (256 KiB reads). Two workloads: read-only, and one where one access in
// BENCH_LOAD_WRITES_PERMILLE/1000 overwrites 512 bytes of a file instead — blessd then clears its tags and rescans it
// before the next reader may read it (after pool.rescanDebounce, BENCH_DEBOUNCE_MS, blessd's default 200 ms).
// For each N: both workloads without a daemon, then blessd (started, every file blessed by a first pass) on both,
// then both without a daemon again; the "none" row is the geometric mean of the runs before and after, so that the
// drift of a shared machine hits both rows alike. Throughput and p99 are ratios against the same workload and N
// without a daemon.
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { benchFsKind, makeBenchFs } from './lib/benchfs.js';
import { Blessd, totalEvents } from './lib/blessd.js';
import { lineChart, writeChart } from './lib/chart.js';
import { access, buildTools, load, type LoadResult } from './lib/native.js';
import { cpuSeconds } from './lib/proc.js';
import { envInt, envInts, FULL, printTable, ratio, requireRoot, summarize, us, writeResult, type Summary, note, RESULTS_DIR, runMain } from './lib/report.js';
import { writeSignatures } from './lib/signatures.js';
import { describeMix, makeMixedTree, mixBytes, PER_DIR } from './lib/tree.js';

const FILES = envInt('BENCH_LOAD_FILES', FULL ? 10_000 : 2000);
const DURATION_MS = envInt('BENCH_LOAD_MS', FULL ? 10_000 : 4000);
const WRITES = envInt('BENCH_LOAD_WRITES_PERMILLE', 10);
const LOADS = envInts('BENCH_LOAD_READERS', FULL ? [1, 2, 4, 8, 16] : [1, 2, 4]);
const THREADS = envInt('BENCH_THREADS', 2);
const DEBOUNCE = envInt('BENCH_DEBOUNCE_MS', 200);
/** pool.rescan for the daemon (BENCH_RESCAN=onClose|onRead; unset: the daemon's default). */
const RESCAN = process.env.BENCH_RESCAN === 'onRead' || process.env.BENCH_RESCAN === 'onClose' ? process.env.BENCH_RESCAN : undefined;
const WORKLOADS = WRITES > 0 ? [0, WRITES] : [0];

interface Run {
  readers: number;
  writePermille: number;
  daemon: 'none' | 'blessd';
  readsPerS: number;
  mbPerS: number;
  lat: Summary;
  writes: number;
  errors: number;
  writeMaxUs: number;
  eventsPerS?: number;
  forwardedPerS?: number;
  scansPerS?: number;
  cpuCores?: number;
  rssMiB?: number;
  /** Permission events answered by the gate's deadline instead of a verdict (should be 0). */
  deadlineAnswers?: number;
}

function toRun(readers: number, writePermille: number, daemon: Run['daemon'], r: LoadResult): Run {
  return { readers, writePermille, daemon, readsPerS: r.reads / r.elapsedS, mbPerS: r.bytes / r.elapsedS / 1e6, lat: summarize(r.samples), writes: r.writes, errors: r.errors, writeMaxUs: r.writeMaxUs };
}

/** Two runs of the same thing: geometric means of throughput and latencies, sums of counts. */
function combine(a: Run, b: Run): Run {
  const g = (x: number, y: number) => Math.sqrt(x * y);
  const lat = { n: a.lat.n + b.lat.n, p50: g(a.lat.p50, b.lat.p50), p99: g(a.lat.p99, b.lat.p99), p999: g(a.lat.p999, b.lat.p999), max: Math.max(a.lat.max, b.lat.max), mean: g(a.lat.mean, b.lat.mean) };
  return { ...a, readsPerS: g(a.readsPerS, b.readsPerS), mbPerS: g(a.mbPerS, b.mbPerS), lat, writes: a.writes + b.writes, errors: a.errors + b.errors, writeMaxUs: Math.max(a.writeMaxUs, b.writeMaxUs) };
}

async function main() {
  requireRoot('bench/load');
  const kind = benchFsKind();
  const fs = await makeBenchFs(kind, { sizeMiB: Math.ceil((mixBytes(FILES) / 2 ** 20) * 1.3 + 128), inodes: FILES + 10_000 });
  const runs: Run[] = [];
  let blessd: Blessd | undefined;
  try {
    const tools = await buildTools(fs.base);
    const files = await makeMixedTree(tools, fs.dir, FILES);
    const db = await writeSignatures(join(fs.base, 'db'));
    const touchAll = () => access(tools, { dir: fs.dir, count: files, perDir: PER_DIR, readSize: 1 << 20, whole: true, timeoutMs: 600_000 }, fs.base);
    await touchAll(); // page cache, dentries
    const spec = { dir: fs.dir, files, perDir: PER_DIR, durationMs: DURATION_MS };
    let firstPassS = NaN;

    for (const readers of LOADS) {
      // No daemon before and after blessd's turn; the baseline is their geometric mean (drift split evenly).
      const before = new Map<number, LoadResult>();
      for (const w of WORKLOADS) before.set(w, await load(tools, { ...spec, readers, writePermille: w }, fs.base));

      blessd = await Blessd.start({ guard: fs.dir, base: join(fs.base, 'blessd'), databases: db, threads: THREADS, rescanDebounceMs: DEBOUNCE, rescan: RESCAN });
      for (const w of WORKLOADS) {
        const t0 = performance.now();
        await touchAll(); // blesses every file (scans on the first N, tag reads after a restart, rescans after writes)
        if (Number.isNaN(firstPassS)) firstPassS = (performance.now() - t0) / 1000;
        const s0 = await blessd.stats();
        const cpu0 = await cpuSeconds(blessd.pid);
        const w0 = performance.now();
        const r = await load(tools, { ...spec, readers, writePermille: w }, fs.base);
        const wallS = (performance.now() - w0) / 1000;
        const cpuS = (await cpuSeconds(blessd.pid)) - cpu0;
        const s1 = await blessd.stats();
        const mem = await blessd.memory();
        const scans = (s: typeof s0) => s.scans.signature ?? 0;
        runs.push({
          ...toRun(readers, w, 'blessd', r),
          eventsPerS: (totalEvents(s1) - totalEvents(s0)) / wallS,
          forwardedPerS: (s1.gate.forwarded - s0.gate.forwarded) / wallS,
          scansPerS: (scans(s1) - scans(s0)) / wallS,
          cpuCores: cpuS / wallS,
          rssMiB: mem.rss / 2 ** 20,
          deadlineAnswers: s1.gate.answeredByDeadline - s0.gate.answeredByDeadline,
        });
      }
      await blessd.stop();
      blessd = undefined;
      for (const w of WORKLOADS) runs.push(combine(toRun(readers, w, 'none', before.get(w)!), toRun(readers, w, 'none', await load(tools, { ...spec, readers, writePermille: w }, fs.base))));
    }
    await copyFile(join(fs.base, 'blessd', 'blessd.log'), join(RESULTS_DIR, 'load-blessd.log')).catch(() => {});

    runs.sort((a, b) => a.readers - b.readers || (a.daemon === b.daemon ? 0 : a.daemon === 'none' ? -1 : 1) || a.writePermille - b.writePermille);
    const base = (r: Run) => runs.find((x) => x.readers === r.readers && x.writePermille === r.writePermille && x.daemon === 'none')!;
    printTable(
      `bench/load: ${files} files (${describeMix()}), ${DURATION_MS / 1000} s per run, read-only or ${WRITES}‰ writes; ${THREADS} pool threads, rescanDebounce ${DEBOUNCE} ms, rescan ${RESCAN ?? 'default'}; ${kind} image`,
      runs.map((r) => ({
        readers: r.readers,
        'writes ‰': r.writePermille,
        daemon: r.daemon,
        'reads/s': r.readsPerS.toFixed(0),
        '× none': ratio(r.readsPerS, base(r).readsPerS),
        'MB/s': r.mbPerS.toFixed(0),
        'p50 µs': us(r.lat.p50),
        'p99 µs': us(r.lat.p99),
        'p99 × none': ratio(r.lat.p99, base(r).lat.p99),
        'p99.9 µs': us(r.lat.p999),
        'max µs': us(r.lat.max),
        writes: r.writes,
        errors: r.errors,
        'events/s': r.eventsPerS?.toFixed(0) ?? '-',
        'to JS/s': r.forwardedPerS?.toFixed(0) ?? '-',
        'scans/s': r.scansPerS?.toFixed(1) ?? '-',
        'daemon CPU': r.cpuCores !== undefined ? `${(r.cpuCores * 100).toFixed(0)}%` : '-',
        'RSS MiB': r.rssMiB?.toFixed(0) ?? '-',
        'deadline answers': r.deadlineAnswers ?? '-',
      })),
    );
    note(`daemon CPU: share of one core over the run (all threads). First bless of the tree: ${firstPassS.toFixed(1)} s.`);
    const stuck = runs.filter((r) => r.lat.max > 10_000_000);
    if (stuck.length) note(`WARNING: reads that waited over 10 s: ${stuck.map((r) => `${r.readers} readers, ${r.writePermille}‰: max ${us(r.lat.max)}`).join('; ')} (daemon log kept in bench/results/load-blessd.log)`);

    const blessdRuns = runs.filter((r) => r.daemon === 'blessd');
    const seriesOf = (value: (r: Run) => number) =>
      WORKLOADS.flatMap((w) =>
        (['none', 'blessd'] as const).map((d) => ({
          name: `${d === 'none' ? 'no daemon' : 'blessd'}, ${w ? `${w}‰ writes` : 'read-only'}`,
          values: LOADS.map((n) => value(runs.find((r) => r.readers === n && r.writePermille === w && r.daemon === d)!)),
        })),
      );
    const charts = [
      writeChart(
        'load-throughput',
        lineChart({ title: `File-server load: reads per second (${kind})`, yLabel: 'reads/s', xLabel: 'parallel reader processes', x: LOADS, series: seriesOf((r) => r.readsPerS) }),
      ),
      writeChart(
        'load-p99',
        lineChart({ title: 'File-server load: p99 latency per read', yLabel: 'µs (log)', xLabel: 'parallel reader processes', x: LOADS, log: true, series: seriesOf((r) => r.lat.p99) }),
      ),
    ];
    const file = writeResult('load', { fs: kind, files, mix: describeMix(), durationMs: DURATION_MS, writePermille: WRITES, threads: THREADS, firstPassS, runs, debounceMs: DEBOUNCE, summary: blessdRuns.map((r) => ({ readers: r.readers, writePermille: r.writePermille, throughputRatio: r.readsPerS / base(r).readsPerS, p99Ratio: r.lat.p99 / base(r).lat.p99 })) });
    console.log('written', file, ...charts);
  } finally {
    await blessd?.stop().catch(() => {});
    await fs.cleanup();
  }
}

runMain(main);
