// Question 4 — scale: what does blessd keep per file once many files have been touched?
// BENCH_SCALE_FILES small files (1 MiB = full default: one million) in directories of 1000. blessd starts idle; reader
// processes then touch every file once (open + 4 KiB read + close: each file is scanned, blessed, and gets an
// ignore mark) — within BENCH_SCALE_LIMIT_S, since the cold path sets the pace; then a full GC in the daemon, and a
// second, warm pass over the touched files. Reported: the daemon's RSS and its growth per touched inode, the kernel
// marks its groups hold (counted from /proc/<pid>/fdinfo), the native verdict table and live inode machines.
// Ratios: RSS against the idle daemon; per-file time against a pass without a daemon over the same files.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { benchFsKind, makeBenchFs } from './lib/benchfs.js';
import { Blessd } from './lib/blessd.js';
import { lineChart, writeChart } from './lib/chart.js';
import { access, buildTools, makeFiles, type AccessResult, type Tools } from './lib/native.js';
import { count, envInt, FULL, median, printTable, ratio, requireRoot, us, writeResult, note, runMain } from './lib/report.js';
import { writeSignatures } from './lib/signatures.js';

const FILES = envInt('BENCH_SCALE_FILES', FULL ? 1_000_000 : 20_000);
const SIZE = envInt('BENCH_SCALE_SIZE', 1024);
const LIMIT_S = envInt('BENCH_SCALE_LIMIT_S', FULL ? 480 : 120);
const READERS = Math.max(1, envInt('BENCH_SCALE_READERS', 2));
const PER_DIR = 1000;
const MiB = 2 ** 20;

/** READERS processes over disjoint ranges (aligned to directories); each range's start and how far it got. */
async function touch(tools: Tools, dir: string, ranges: { start: number; count: number }[], scratch: string, limitS?: number): Promise<AccessResult[]> {
  return Promise.all(ranges.map((r) => access(tools, { dir, start: r.start, count: r.count, perDir: PER_DIR, limitS, timeoutMs: ((limitS ?? 1200) + 120) * 1000 }, scratch)));
}

function split(files: number, parts: number): { start: number; count: number }[] {
  const per = Math.ceil(files / parts / PER_DIR) * PER_DIR;
  return Array.from({ length: parts }, (_, i) => ({ start: i * per, count: Math.max(0, Math.min(per, files - i * per)) })).filter((r) => r.count > 0);
}

async function snapshot(b: Blessd) {
  return { mem: await b.memory(), heap: await b.memoryUsage(), marks: await b.marks(), stats: await b.stats() };
}

async function main() {
  requireRoot('bench/scale');
  const kind = benchFsKind();
  const fs = await makeBenchFs(kind, { sizeMiB: Math.ceil((FILES * 4096 * 1.15) / MiB + 256), inodes: FILES + 20_000 });
  let blessd: Blessd | undefined;
  try {
    const tools = await buildTools(fs.base);
    const ranges = split(FILES, READERS);
    const t0 = performance.now();
    await Promise.all(ranges.map((r) => makeFiles(tools, { dir: fs.dir, start: r.start, count: r.count, size: SIZE, perDir: PER_DIR }, 1_200_000)));
    const createS = (performance.now() - t0) / 1000;
    await touch(tools, fs.dir, ranges, fs.base); // page cache, inode cache
    const plain = await touch(tools, fs.dir, ranges, fs.base);
    const db = await writeSignatures(join(fs.base, 'db'));

    blessd = await Blessd.start({ guard: fs.dir, base: join(fs.base, 'blessd'), databases: db });
    await sleep(2000);
    await blessd.gc();
    const idle = await snapshot(blessd);

    // Touch, sampling memory and the daemon's counters every few seconds (the curve shows growth, or a leak).
    const curve: { s: number; blessed: number; rssMiB: number; verdictTable: number; machines: number }[] = [];
    const b = blessd;
    let sampling = true;
    const tStart = performance.now();
    const sampler = (async () => {
      while (sampling) {
        const [st, mem] = await Promise.all([b.stats(), b.memory()]);
        curve.push({ s: (performance.now() - tStart) / 1000, blessed: st.verdicts.allow, rssMiB: mem.rss / MiB, verdictTable: st.gate.verdictTableSize, machines: st.machines });
        await sleep(FULL ? 10_000 : 3000);
      }
    })();
    const cold = await touch(tools, fs.dir, ranges, fs.base, LIMIT_S);
    const touchS = (performance.now() - tStart) / 1000;
    sampling = false;
    await sampler;
    const touched = cold.reduce((a, r) => a + r.n, 0);
    const after = await snapshot(blessd);
    await sleep(3000);
    await blessd.gc();
    const settled = await snapshot(blessd);

    // Warm: the same files again (only as far as each reader got).
    const warmRanges = ranges.map((r, i) => ({ start: r.start, count: cold[i].n }));
    const warm = await touch(tools, fs.dir, warmRanges, fs.base);
    const afterWarm = await snapshot(blessd);
    await blessd.stop();
    blessd = undefined;

    const perInode = (rss: number) => (rss - idle.mem.rss) / Math.max(1, touched);
    // The slope of the RSS curve over its last three quarters: what one more inode costs, without the fixed start-up
    // growth (worker heaps, compiled code) that the first few thousand files bring.
    const from = curve.find((c) => c.blessed >= 0.25 * (curve[curve.length - 1]?.blessed ?? 0));
    const to = curve[curve.length - 1];
    const marginal = from && to && to.blessed > from.blessed ? ((to.rssMiB - from.rssMiB) * MiB) / (to.blessed - from.blessed) : NaN;
    // The same over the last half only: the native table is swept every 65,536 new entries, so what one more inode
    // costs once the first sweep is behind shows there (the first quarter to the end still includes its growth).
    const half = curve.find((c) => c.blessed >= 0.5 * (to?.blessed ?? 0));
    const marginalLate = half && to && to.blessed > half.blessed ? ((to.rssMiB - half.rssMiB) * MiB) / (to.blessed - half.blessed) : NaN;
    const heapPerInode = (p: typeof idle) => (p.heap.heapUsed + p.heap.external - idle.heap.heapUsed - idle.heap.external) / Math.max(1, touched);
    const phase = (name: string, p: typeof idle) => ({
      phase: name,
      'RSS MiB': (p.mem.rss / MiB).toFixed(0),
      '× idle': ratio(p.mem.rss, idle.mem.rss),
      'RSS bytes/inode': name === 'idle' ? '-' : perInode(p.mem.rss).toFixed(0),
      'JS heap MiB': ((p.heap.heapUsed + p.heap.external) / MiB).toFixed(1),
      'heap bytes/inode': name === 'idle' ? '-' : heapPerInode(p).toFixed(0),
      'kernel inode marks': count(p.marks.inode),
      'fs/mount marks': p.marks.fsOrMount,
      'verdict table': count(p.stats.gate.verdictTableSize),
      'live machines': p.stats.machines,
      'held fds': p.stats.gate.heldFds,
    });
    const table = [phase('idle', idle), phase('after touching', after), phase('after GC', settled), phase('after warm pass', afterWarm)];
    printTable(`bench/scale: ${count(touched)} of ${count(FILES)} files of ${SIZE} B touched by ${READERS} readers (limit ${LIMIT_S} s); ${kind} image`, table);
    const plainMed = median(plain.map((r) => r.median_us));
    const timing = [
      { pass: 'no daemon', 'median µs/file': us(plainMed), '× no daemon': '1.00×', 'files/s': (plain.reduce((a, r) => a + r.n, 0) / Math.max(...plain.map((r) => r.elapsed_s))).toFixed(0) },
      { pass: 'blessd, first touch (scan)', 'median µs/file': us(median(cold.map((r) => r.median_us))), '× no daemon': ratio(median(cold.map((r) => r.median_us)), plainMed), 'files/s': (touched / touchS).toFixed(0) },
      { pass: 'blessd, warm', 'median µs/file': us(median(warm.map((r) => r.median_us))), '× no daemon': ratio(median(warm.map((r) => r.median_us)), plainMed), 'files/s': (touched / Math.max(...warm.map((r) => r.elapsed_s))).toFixed(0) },
    ];
    printTable('bench/scale: time per file', timing);
    note(`marginal RSS per inode (slope of RSS over the last 3/4 of the touch pass): ${Number.isFinite(marginal) ? marginal.toFixed(0) : 'n/a'} bytes; over the last half: ${Number.isFinite(marginalLate) ? marginalLate.toFixed(0) : 'n/a'} bytes`);
    note(`created ${count(FILES)} files in ${createS.toFixed(0)} s; RSS high-water mark ${(after.mem.hwm / MiB).toFixed(0)} MiB${cold.some((r) => r.stopped) ? `; the touch pass hit the ${LIMIT_S} s limit (raise BENCH_SCALE_LIMIT_S)` : ''}`);

    const charts = [
      writeChart('scale-rss', lineChart({ title: `Daemon RSS while touching files (${kind})`, yLabel: 'MiB', xLabel: 'files blessed', x: curve.map((c) => c.blessed), numericX: true, series: [{ name: 'RSS', values: curve.map((c) => c.rssMiB) }] })),
    ];
    const file = writeResult('scale', { fs: kind, files: FILES, size: SIZE, readers: READERS, limitS: LIMIT_S, touched, touchS, createS, bytesPerInode: { afterTouch: perInode(after.mem.rss), afterGc: perInode(settled.mem.rss), afterWarm: perInode(afterWarm.mem.rss), heapAfterGc: heapPerInode(settled), marginal, marginalLate }, idle, after, settled, afterWarm, curve, timing });
    console.log('written', file, ...charts);
  } finally {
    await blessd?.stop().catch(() => {});
    await fs.cleanup();
  }
}

runMain(main);
