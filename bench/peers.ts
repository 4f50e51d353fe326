// Question 5 — peers: the same workload, in the same run, under no daemon, blessd, Debian's fapolicyd (allow-all
// rules: its cost is the gate itself) and ClamAV's clamonacc + clamd (prevention on the bench mount, the same small
// hand-written database blessd uses). Every number is a ratio to no daemon; "no daemon, again" at the end shows the
// drift of the machine over the run.
// The workload: a first pass over unseen files (4 KiB and 1 MiB: each tool's first contact), warm passes over the
// same files, and a short file-server load on a mixed tree (read-only, then with writes).
// Peers run on an xfs image (fapolicyd watches by filesystem type; xfs is the type of no other mount here — checked).
// Each peer has a hard time limit and is stopped in a finally block.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { benchFsKind, makeBenchFs, type BenchFs } from './lib/benchfs.js';
import { Blessd } from './lib/blessd.js';
import { barChart, writeChart } from './lib/chart.js';
import { access, buildTools, load, makeFiles, type Tools } from './lib/native.js';
import { ensurePeersInstalled, startClamav, startFapolicyd, type Peer } from './lib/peers.js';
import { envInt, FULL, median, printTable, ratio, requireRoot, summarize, us, writeResult, note, runMain } from './lib/report.js';
import { writeSignatures } from './lib/signatures.js';
import { describeMix, makeMixedTree, mixBytes, PER_DIR } from './lib/tree.js';

const N4K = envInt('BENCH_PEERS_4K', FULL ? 10_000 : 2000);
const N1M = envInt('BENCH_PEERS_1M', FULL ? 200 : 50);
const MIX_FILES = envInt('BENCH_PEERS_MIX', FULL ? 4000 : 1000);
const LOAD_MS = envInt('BENCH_PEERS_LOAD_MS', FULL ? 8000 : 3000);
const READERS = envInt('BENCH_PEERS_READERS', 2);
const WARM_ROUNDS = envInt('BENCH_PEERS_ROUNDS', 3);
const LIMIT_MS = envInt('BENCH_PEERS_LIMIT_S', FULL ? 600 : 240) * 1000;
const WRITES = 10;

interface Result {
  who: string;
  first4k?: number;
  first1m?: number;
  warm4k?: number;
  warm1m?: number;
  loadRo?: number;
  loadRoP99?: number;
  loadRw?: number;
  cpuS?: number;
  wallS?: number;
  note?: string;
}

/** The workload; any step that fails or times out leaves its cell empty and a note. */
async function workload(tools: Tools, fs: BenchFs, files: number, who: string, cpu?: () => Promise<number>): Promise<Result> {
  const r: Result = { who };
  const dir4 = join(fs.dir, 'p4k');
  const dir1 = join(fs.dir, 'p1m');
  const mix = join(fs.dir, 'mix');
  const cpu0 = cpu ? await cpu() : 0;
  const t0 = performance.now();
  const limit = { timeoutMs: LIMIT_MS };
  try {
    r.first4k = (await access(tools, { dir: dir4, count: N4K, ...limit }, fs.base)).median_us;
    r.first1m = (await access(tools, { dir: dir1, count: N1M, readSize: 1 << 20, whole: true, ...limit }, fs.base)).median_us;
    await access(tools, { dir: mix, count: files, perDir: PER_DIR, readSize: 1 << 20, whole: true, ...limit }, fs.base); // first contact with the mixed tree
    const w4: number[] = [];
    const w1: number[] = [];
    for (let i = 0; i < WARM_ROUNDS; i++) {
      w4.push((await access(tools, { dir: dir4, count: N4K, ...limit }, fs.base)).median_us);
      w1.push((await access(tools, { dir: dir1, count: N1M, readSize: 1 << 20, whole: true, ...limit }, fs.base)).median_us);
    }
    r.warm4k = median(w4);
    r.warm1m = median(w1);
    const spec = { dir: mix, files, perDir: PER_DIR, durationMs: LOAD_MS, readers: READERS, timeoutMs: LOAD_MS + LIMIT_MS };
    const ro = await load(tools, { ...spec, writePermille: 0 }, fs.base);
    r.loadRo = ro.reads / ro.elapsedS;
    r.loadRoP99 = summarize(ro.samples).p99;
    const rw = await load(tools, { ...spec, writePermille: WRITES }, fs.base);
    r.loadRw = rw.reads / rw.elapsedS;
  } catch (err) {
    r.note = `stopped: ${(err as Error).message.split('\n')[0].slice(0, 200)}`;
  }
  r.wallS = (performance.now() - t0) / 1000;
  if (cpu) r.cpuS = (await cpu()) - cpu0;
  return r;
}

async function main() {
  requireRoot('bench/peers');
  const kind = benchFsKind('xfs');
  await ensurePeersInstalled((s) => console.log(s));
  const dataMiB = (N4K * 4096 + N1M * 2 ** 20 + mixBytes(MIX_FILES)) / 2 ** 20;
  const fs = await makeBenchFs(kind, { sizeMiB: Math.ceil(dataMiB * 1.3 + 256), inodes: N4K + N1M + MIX_FILES + 10_000 });
  const results: Result[] = [];
  try {
    const tools = await buildTools(fs.base);
    for (const d of ['p4k', 'p1m', 'mix']) await mkdir(join(fs.dir, d));
    await makeFiles(tools, { dir: join(fs.dir, 'p4k'), count: N4K, size: 4096 });
    await makeFiles(tools, { dir: join(fs.dir, 'p1m'), count: N1M, size: 2 ** 20 });
    const files = await makeMixedTree(tools, join(fs.dir, 'mix'), MIX_FILES);
    const db = await writeSignatures(join(fs.base, 'db'));
    await workload(tools, fs, files, 'warm-up'); // page cache and dentries, for everyone alike

    results.push(await workload(tools, fs, files, 'no daemon'));

    let blessd: Blessd | undefined;
    try {
      blessd = await Blessd.start({ guard: fs.dir, base: join(fs.base, 'blessd'), databases: db });
      const b = blessd;
      results.push(await workload(tools, fs, files, 'blessd', () => b.cpuSeconds()));
    } catch (err) {
      results.push({ who: 'blessd', note: `failed: ${(err as Error).message}` });
    } finally {
      await blessd?.stop().catch(() => {});
    }

    for (const [who, start] of [
      ['fapolicyd (allow all)', () => startFapolicyd(fs.base, fs.dir, kind, LIMIT_MS * 3)],
      ['clamonacc + clamd', () => startClamav(fs.base, fs.dir, db, LIMIT_MS * 3)],
    ] as const) {
      let peer: Peer | undefined;
      try {
        peer = await start();
        const p = peer;
        results.push(await workload(tools, fs, files, who, () => p.cpuSeconds()));
      } catch (err) {
        results.push({ who, note: `failed: ${(err as Error).message.split('\n')[0]}` });
      } finally {
        await peer?.stop().catch(() => {});
      }
    }

    results.push(await workload(tools, fs, files, 'no daemon, again'));
  } finally {
    await fs.cleanup();
  }

  // The baseline: no daemon at the start and at the end of the run (geometric mean per metric), so that the drift of
  // a shared machine over the run is split evenly between the contenders measured in between.
  const first = results[0];
  const last = results[results.length - 1];
  const gm = (a?: number, b?: number) => (a !== undefined && b !== undefined ? Math.sqrt(a * b) : (a ?? b));
  const base: Result = { who: 'baseline', first4k: gm(first.first4k, last.first4k), first1m: gm(first.first1m, last.first1m), warm4k: gm(first.warm4k, last.warm4k), warm1m: gm(first.warm1m, last.warm1m), loadRo: gm(first.loadRo, last.loadRo), loadRoP99: gm(first.loadRoP99, last.loadRoP99), loadRw: gm(first.loadRw, last.loadRw) };
  const cell = (v: number | undefined, b: number | undefined) => (v === undefined ? '—' : ratio(v, b!));
  const table = results.map((r) => ({
    contender: r.who,
    'first 4 KiB': cell(r.first4k, base.first4k),
    'first 1 MiB': cell(r.first1m, base.first1m),
    'warm 4 KiB': cell(r.warm4k, base.warm4k),
    'warm 1 MiB': cell(r.warm1m, base.warm1m),
    'load reads/s': cell(r.loadRo, base.loadRo),
    'load p99': cell(r.loadRoP99, base.loadRoP99),
    [`load ${WRITES}‰ writes`]: cell(r.loadRw, base.loadRw),
    'daemon CPU s': r.cpuS?.toFixed(1) ?? '-',
    note: r.note ?? '',
  }));
  printTable(`bench/peers: ${N4K} × 4 KiB, ${N1M} × 1 MiB, ${files(results)} mixed (${describeMix()}), ${READERS} readers × ${LOAD_MS / 1000} s; ${kind} image`, table);
  note(
    `ratios to no daemon (geometric mean of the first and last rows): time per file (first/warm: median; lower is better), reads/s (higher is better), p99 (lower is better).\nno daemon: first 4 KiB ${us(base.first4k!)} µs, warm 4 KiB ${us(base.warm4k!)} µs, warm 1 MiB ${us(base.warm1m!)} µs, ${base.loadRo?.toFixed(0)} reads/s read-only, ${base.loadRw?.toFixed(0)} with writes`,
  );
  const contenders = results.filter((r) => !r.who.startsWith('no daemon'));
  const chart = writeChart(
    'peers',
    barChart({
      title: `Peers, same workload (${kind}): time per access vs no daemon`,
      yLabel: '× no daemon (log)',
      categories: ['first 4 KiB', 'warm 4 KiB', 'warm 1 MiB', '1/load reads'],
      series: contenders.map((r) => ({ name: r.who, values: [r.first4k! / base.first4k!, r.warm4k! / base.warm4k!, r.warm1m! / base.warm1m!, base.loadRo! / r.loadRo!] })),
      reference: { value: 1, label: 'no daemon' },
      log: true,
    }),
  );
  const file = writeResult('peers', { fs: kind, n4k: N4K, n1m: N1M, mixFiles: MIX_FILES, readers: READERS, loadMs: LOAD_MS, writePermille: WRITES, results });
  console.log('written', file, chart);
}

const files = (_: Result[]) => MIX_FILES;

runMain(main);
