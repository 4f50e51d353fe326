// Question 1 — the warm path: what does open+read+close of an already blessed file cost?
// One image, one run, rows per file size: no daemon (the baseline), the kernel's floor (floor.c: a gate-like fanotify
// group with an ignore mark on every file — the verdict cache and nothing else), blessd with every file blessed, and
// blessd's first pass after a restart (valid tags on disk, nothing in memory) three ways: with the settle walk off
// (each file's tags are read once, on the native reader thread, at its first access), at once after a start with
// the walk on (it races the readers), and once the walk is done (every file already has its ignore mark).
// The machine is shared and noisy, so the rows are interleaved: BENCH_CYCLES cycles of [no daemon, floor, blessd],
// each a fresh reader process per file set; a row's number is the median over cycles of the per-process median.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { benchFsKind, makeBenchFs } from './lib/benchfs.js';
import { Blessd, totalEvents } from './lib/blessd.js';
import { barChart, writeChart } from './lib/chart.js';
import { access, buildTools, makeFiles, startFloor, type Tools } from './lib/native.js';
import { envInt, FULL, median, printTable, ratio, requireRoot, us, writeResult, note, runMain } from './lib/report.js';
import { writeSignatures } from './lib/signatures.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SETS = [
  { name: '4 KiB', size: 4 * KiB, count: envInt('BENCH_WARM_4K', 10_000), readSize: 4 * KiB },
  { name: '1 MiB', size: MiB, count: envInt('BENCH_WARM_1M', FULL ? 1000 : 200), readSize: MiB },
  { name: '64 MiB', size: 64 * MiB, count: envInt('BENCH_WARM_64M', FULL ? 16 : 4), readSize: MiB },
].filter((s) => s.count > 0);
const CYCLES = envInt('BENCH_CYCLES', FULL ? 9 : 5);

interface Cell {
  median_us: number;
  p99_us: number;
  mean_us: number;
  gbps: number;
}

async function measure(tools: Tools, dir: string, set: (typeof SETS)[number], scratch: string): Promise<Cell> {
  const a = await access(tools, { dir: join(dir, set.name.replace(' ', '')), count: set.count, readSize: set.readSize, whole: true }, scratch);
  if (a.errors > 0) throw new Error(`${a.errors} failed accesses in ${set.name}`);
  return { median_us: a.median_us, p99_us: a.p99_us, mean_us: a.mean_us, gbps: a.bytes / a.elapsed_s / 1e9 };
}

const combine = (cells: Cell[]): Cell & { spread: string } => {
  const meds = cells.map((c) => c.median_us).sort((a, b) => a - b);
  return {
    median_us: median(meds),
    p99_us: median(cells.map((c) => c.p99_us)),
    mean_us: median(cells.map((c) => c.mean_us)),
    gbps: median(cells.map((c) => c.gbps)),
    spread: `${us(meds[0])}–${us(meds[meds.length - 1])}`,
  };
};

const RESTART_OFF = 'blessd, first pass after restart, walk off';
const RESTART_AT_ONCE = 'blessd, first pass at once after restart, walk on';
const RESTART_WALKED = 'blessd, first pass after restart, walk done';
const ROWS = ['no daemon', 'kernel floor (ignore marks)', 'blessd, all blessed', RESTART_OFF, RESTART_AT_ONCE, RESTART_WALKED] as const;
const isRestartRow = (r: string) => r.includes('restart');
type Row = (typeof ROWS)[number];

async function main() {
  requireRoot('bench/warm');
  const kind = benchFsKind();
  const dataMiB = SETS.reduce((a, s) => a + (s.count * Math.max(s.size, 4 * KiB)) / MiB, 0);
  const fs = await makeBenchFs(kind, { sizeMiB: Math.ceil(dataMiB * 1.2 + 128), inodes: SETS.reduce((a, s) => a + s.count, 0) + 10_000 });
  const cells = new Map<string, Cell[]>(); // `${row}|${set}` -> one cell per cycle
  const add = (row: Row, set: string, c: Cell) => cells.set(`${row}|${set}`, [...(cells.get(`${row}|${set}`) ?? []), c]);
  const events = { floor: 0, blessd: 0, blessdForwarded: 0 };
  const rowEvents = new Map<string, number>(); // restart rows: events seen while the row was measured
  const walkSeconds: number[] = [];
  const walkCpuUsPerFile: number[] = []; // the daemon's CPU (all threads) from start to walk done, per file walked
  let blessd: Blessd | undefined;
  try {
    const tools = await buildTools(fs.base);
    for (const s of SETS) {
      const dir = join(fs.dir, s.name.replace(' ', ''));
      await mkdir(dir);
      await makeFiles(tools, { dir, count: s.count, size: s.size });
    }
    const db = await writeSignatures(join(fs.base, 'db'));
    const opts = { guard: fs.dir, base: join(fs.base, 'blessd'), databases: db, settleWalk: { enabled: false } };
    const walkOn = { ...opts, settleWalk: { enabled: true } };
    /** One restart row: a fresh daemon, optionally once its walk is done, then every set read once. */
    const restartRow = async (row: Row, o: typeof opts, waitWalk: boolean) => {
      blessd = await Blessd.start(o);
      if (waitWalk) {
        const cpu0 = await blessd.cpuSeconds();
        const t0 = performance.now();
        const until = t0 + 300_000;
        for (;;) {
          const w = (await blessd.stats()).gate.settleWalk;
          if (w.state === 'done' && w.completed >= 1) break;
          if (performance.now() > until) throw new Error(`settle walk not done in 300 s: ${JSON.stringify(w)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        walkSeconds.push((performance.now() - t0) / 1000);
        const w = (await blessd.stats()).gate.settleWalk;
        walkCpuUsPerFile.push((((await blessd.cpuSeconds()) - cpu0) * 1e6) / Math.max(1, w.walked));
      }
      const before = totalEvents(await blessd.stats());
      for (const s of SETS) add(row, s.name, await measure(tools, fs.dir, s, fs.base));
      rowEvents.set(row, (rowEvents.get(row) ?? 0) + totalEvents(await blessd.stats()) - before);
    };
    for (const s of SETS) await measure(tools, fs.dir, s, fs.base); // page cache warm, dentries in

    // The very first blessd pass scans every file: not a row (that is bench/cold), but its time is reported.
    blessd = await Blessd.start(opts);
    const t0 = performance.now();
    for (const s of SETS) await measure(tools, fs.dir, s, fs.base);
    const firstPassS = (performance.now() - t0) / 1000;
    const afterFirst = await blessd.stats();
    await blessd.stop();
    blessd = undefined;

    for (let c = 0; c < CYCLES; c++) {
      for (const s of SETS) add('no daemon', s.name, await measure(tools, fs.dir, s, fs.base));

      const floor = await startFloor(tools, fs.dir);
      try {
        for (const s of SETS) add('kernel floor (ignore marks)', s.name, await measure(tools, fs.dir, s, fs.base));
      } finally {
        events.floor += await floor.stop();
      }

      await restartRow(RESTART_OFF, opts, false);
      await blessd!.stop();
      await restartRow(RESTART_AT_ONCE, walkOn, false);
      await blessd!.stop();
      await restartRow(RESTART_WALKED, walkOn, true);
      const before = await blessd!.stats();
      for (const s of SETS) add('blessd, all blessed', s.name, await measure(tools, fs.dir, s, fs.base));
      const after = await blessd!.stats();
      events.blessd += totalEvents(after) - totalEvents(before);
      events.blessdForwarded += after.gate.forwarded - before.gate.forwarded;
      await blessd!.stop();
      blessd = undefined;
    }

    const rows = ROWS.flatMap((row) => SETS.map((s) => ({ row, set: s.name, cell: combine(cells.get(`${row}|${s.name}`)!) })));
    const base = (set: string) => rows.find((r) => r.row === 'no daemon' && r.set === set)!.cell;
    const seen = (row: Row) => (row === 'kernel floor (ignore marks)' ? events.floor : row === 'blessd, all blessed' ? events.blessd : rowEvents.get(row) ?? '-');
    const table = rows.map((r) => ({
      files: r.set,
      row: r.row,
      'median µs': us(r.cell.median_us),
      'cycle medians': r.cell.spread,
      'p99 µs': us(r.cell.p99_us),
      'GB/s': r.cell.gbps.toFixed(2),
      '× no daemon': ratio(r.cell.median_us, base(r.set).median_us),
      'events seen': r.set === SETS[0].name ? seen(r.row) : '',
    }));
    const counts = SETS.map((s) => `${s.count} × ${s.name}`).join(', ');
    printTable(`bench/warm: open+read whole file+close, ${counts}; ${CYCLES} interleaved cycles; ${kind} image`, table);
    note(`events seen: summed over all sets and cycles (0 = the kernel answered everything from ignore marks)`);
    note(`settle walk (default rate), start to done: ${walkSeconds.map((s) => s.toFixed(2)).join(', ')} s per cycle; daemon CPU (all threads, polling included) per file walked: ${walkCpuUsPerFile.map((u) => u.toFixed(1)).join(', ')} µs`);
    note(`blessd first pass (scans every file, not a row): ${firstPassS.toFixed(1)} s; verdicts ${JSON.stringify(afterFirst.verdicts)}; scans ${JSON.stringify(afterFirst.scans)}`);

    // The restart row answers another question (and would dwarf the others): table only.
    const series = ROWS.filter((r) => r !== 'no daemon' && !isRestartRow(r)).map((name) => ({
      name,
      values: SETS.map((s) => rows.find((r) => r.row === name && r.set === s.name)!.cell.median_us / base(s.name).median_us),
    }));
    const chart = writeChart('warm', barChart({ title: `Warm path: median open+read+close per file (${kind})`, yLabel: '× no daemon', categories: SETS.map((s) => s.name), series, reference: { value: 1, label: 'no daemon' } }));
    const file = writeResult('warm', { fs: kind, cycles: CYCLES, sets: SETS, firstPassS, firstPassStats: afterFirst, events, rowEvents: Object.fromEntries(rowEvents), walkSeconds, walkCpuUsPerFile, rows: rows.map((r) => ({ ...r, ratio: r.cell.median_us / base(r.set).median_us })), raw: Object.fromEntries(cells) });
    console.log('written', file, chart);
  } finally {
    await blessd?.stop().catch(() => {});
    await fs.cleanup();
  }
}

runMain(main);
