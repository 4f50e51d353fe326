// Question: what does the gate cost per open+read+close of a small file, and how many forwarded permission events
// can it answer per second?
// Latency, one run, one ext4 image: no gate (baseline); gate with every file blessed (the kernel's ignore-mark check
// only); gate answering every event from JS (the round trip through the reader thread and the main thread).
// Throughput: THREADS accessor threads (bench/native/parallel-read.c) over unblessed files for a few seconds, every
// read a permission event that JS answers; rounds of [no gate, C listener, gate] interleaved. The C listener
// (bench/native/floor.c, cold) is the floor: the same read-mode filesystem mark, every event answered allow at once
// on its own thread. Forwarded events/s = events JS answered / wall time, read from the gate's own counters; the
// floor's = events it answered / wall time.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Gate } from '../src/gate/gate.js';
import { FAN_ALLOW, type GateEvent } from '../src/gate/types.js';
import { makeScratch } from '../test/helpers/scratch.js';
import { latencyDelta, latencyPercentile } from '../src/gate/latency.js';
import { envInts, median, printTable, writeResult, runMain, note } from './lib/report.js';
import { startFloor } from './lib/native.js';

const run = promisify(execFile);
const FILES = Number(process.env.BENCH_FILES ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const THREADS = envInts('BENCH_GATE_THREADS', [1, 16, 64]);
const FLOOD_S = Number(process.env.BENCH_GATE_SECONDS ?? 3);
const FLOOD_ROUNDS = Number(process.env.BENCH_GATE_FLOOD_ROUNDS ?? 3);

interface Sample { n: number; median_us: number; p99_us: number; mean_us: number }

async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench/gate needs root (fanotify, loop mounts)');
  const scratch = await makeScratch('ext4', 128);
  const bin = join(scratch.base, 'open-read');
  await run('gcc', ['-O2', '-o', bin, join(process.cwd(), 'bench/native/open-read.c')]);
  const flood = join(scratch.base, 'parallel-read');
  await run('gcc', ['-O2', '-Wall', '-o', flood, join(process.cwd(), 'bench/native/parallel-read.c'), '-lpthread']);
  const floor = join(scratch.base, 'floor');
  await run('gcc', ['-O2', '-Wall', '-o', floor, join(process.cwd(), 'bench/native/floor.c'), '-lpthread']);
  const dir = join(scratch.dir, 'files');
  await mkdir(dir);
  const body = Buffer.alloc(4096, 0x42);
  for (let i = 0; i < FILES; i++) await writeFile(join(dir, `f${String(i).padStart(5, '0')}`), body);

  // Each row: ROUNDS separate processes over all files; the row's number is the median of the per-process medians.
  const measure = async (): Promise<Sample> => {
    const samples: Sample[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const { stdout } = await run(bin, [dir, String(FILES), '1']);
      samples.push(JSON.parse(stdout));
    }
    return { n: samples.reduce((a, s) => a + s.n, 0), median_us: median(samples.map((s) => s.median_us)), p99_us: median(samples.map((s) => s.p99_us)), mean_us: median(samples.map((s) => s.mean_us)) };
  };

  const rows: { row: string; s: Sample; events: number }[] = [];
  const tput: Throughput[] = [];
  let forgetCost: { marks: number; ms: number; forgotten: number } | undefined;
  try {
    await measure(); // warm the page cache
    rows.push({ row: 'no gate', s: await measure(), events: 0 });

    let bless = true;
    let events = 0;
    const gate = new Gate({
      deadlineMs: 10_000,
      onEvents: (batch: GateEvent[]) => {
        for (const e of batch) {
          events++;
          if (e.kind === 'perm') {
            if (bless) gate.native.bless(e.fd);
            gate.native.answer(e.id, FAN_ALLOW);
          }
        }
      },
    });
    try {
      await gate.guard(scratch.dir, 'filesystem', 'read');
      await measure(); // first pass blesses every file
      events = 0;
      rows.push({ row: 'gate, all blessed', s: await measure(), events });

      bless = false;
      // Forgetting every verdict clears each mark's bits in place (docs/kernel.md, "Forgetting every mark"): its cost.
      const marks = gate.native.stats().ignoreMarksAdded;
      const f0 = performance.now();
      await gate.forgetAll();
      forgetCost = { marks, ms: performance.now() - f0, forgotten: gate.native.stats().marksForgotten };
      events = 0;
      const before = gate.native.stats();
      rows.push({ row: 'gate, JS answers each event', s: await measure(), events });
      const after = gate.native.stats();
      const lat = latencyDelta(after.latencyUs, before.latencyUs);
      const total = lat.reduce((a, b) => a + b, 0);
      (rows[2] as any).roundTripP99 = `p50 ≤ ${latencyPercentile(lat, 0.5)} µs, p99 ≤ ${latencyPercentile(lat, 0.99)} µs (kernel read → JS answer, ${total} permission events)`;
    } finally {
      gate.close();
    }
    for (const threads of THREADS) tput.push(await throughput(flood, floor, dir, scratch.dir, threads));
  } finally {
    await scratch.cleanup();
  }

  const base = rows[0].s.median_us;
  const table = rows.map((r) => ({
    row: r.row,
    'median µs': r.s.median_us.toFixed(2),
    'p99 µs': r.s.p99_us.toFixed(2),
    'ratio (median)': (r.s.median_us / base).toFixed(2) + '×',
    'events to JS': r.events,
  }));
  printTable(`bench/gate: open+pread(4 KiB)+close, ${FILES} files × ${ROUNDS} processes, ext4 image`, table);
  if ((rows[2] as any).roundTripP99) console.log(`JS round trip: ${(rows[2] as any).roundTripP99}`);
  printTable(
    `bench/gate: forwarded permission events answered per second, parallel-read threads over ${FILES} unblessed 4 KiB files, ${FLOOD_ROUNDS} interleaved rounds of ${FLOOD_S} s (medians)`,
    tput.map((r) => ({
      threads: r.threads,
      'no gate accesses/s': r.plainPerS.toFixed(0),
      'gate accesses/s': r.gatePerS.toFixed(0),
      '× no gate': (r.gatePerS / r.plainPerS).toFixed(3) + '×',
      'C listener accesses/s': r.floorPerS.toFixed(0),
      'C listener events/s': r.floorEventsPerS.toFixed(0),
      'forwarded events/s': r.forwardedPerS.toFixed(0),
      '× C listener': (r.forwardedPerS / Math.max(1, r.floorEventsPerS)).toFixed(3) + '×',
      'events per JS batch': r.perBatch.toFixed(1),
      'answer p50 / p99 µs': `${r.p50} / ${r.p99}`,
      'reader CPU %': r.readerCpu.toFixed(0),
      'main CPU %': r.mainCpu.toFixed(0),
      'CPU µs per event': (((r.readerCpu + r.mainCpu) / 100 / Math.max(1, r.forwardedPerS)) * 1e6).toFixed(0),
      'held for syscall': `${r.held} (${r.heldExpired} past 5 ms)`,
      'not by JS': r.notByJs,
    })),
  );
  note('C listener events/s: permission events the C listener (bench/native/floor.c cold: blessd\'s read-mode filesystem mark, no ignore marks, every event answered allow at once) answered per second of wall time, the floor for forwarded events/s; forwarded events/s: permission events JS answered (gate.stats().answeredByJs) per second of wall time; CPU µs per event: the reader thread\'s and the main thread\'s CPU time (/proc/self/task) per forwarded event; held for syscall: events set aside because the accessor was not asleep yet when asked whether it writes (summed over rounds); "not by JS": deadline or overload answers in those rounds (should be 0)');
  if (forgetCost) {
    note(`forgetAll with ${forgetCost.marks} blessed files: ${forgetCost.ms.toFixed(1)} ms until the kernel's marks were cleared (${((forgetCost.ms * 1000) / Math.max(1, forgetCost.forgotten)).toFixed(1)} µs a mark, ${forgetCost.forgotten} marks cleared in place; on the gate's own thread, nothing else waits)`);
  }
  console.log('written', writeResult('gate', { files: FILES, rounds: ROUNDS, rows: rows.map((r) => ({ row: r.row, ...r.s, ratio: r.s.median_us / base, events: r.events, roundTripP99: (r as any).roundTripP99 })), throughput: tput, forgetCost }));
}

interface Throughput {
  threads: number;
  plainPerS: number;
  floorPerS: number;
  floorEventsPerS: number;
  gatePerS: number;
  forwardedPerS: number;
  perBatch: number;
  p50: number;
  p99: number;
  readerCpu: number;
  mainCpu: number;
  notByJs: number;
  held: number;
  heldExpired: number;
}

/** CPU seconds of each of our threads, by thread name (/proc/self/task/<tid>/stat, utime + stime). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${name}:${tid}`, (Number(f[11]) + Number(f[12])) / 100);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** Rounds of [no gate, C listener, gate answering every event from JS]: medians of accesses/s and events/s. */
async function throughput(bin: string, floorBin: string, dir: string, mountDir: string, threads: number): Promise<Throughput> {
  const pass = async () => JSON.parse((await run(bin, [dir, String(FILES), String(threads), String(FLOOD_S)], { timeout: (FLOOD_S + 60) * 1000 })).stdout) as { accesses: number; errors: number; elapsed_s: number };
  const plain: number[] = [];
  const floorAccesses: number[] = [];
  const floorEvents: number[] = [];
  const gated: number[] = [];
  const forwarded: number[] = [];
  const perBatch: number[] = [];
  const reader: number[] = [];
  const main: number[] = [];
  let notByJs = 0;
  let held = 0;
  let heldExpired = 0;
  let lat: number[] = [];
  for (let r = 0; r < FLOOD_ROUNDS; r++) {
    const p = await pass();
    if (p.errors > 0) throw new Error(`parallel-read: ${p.errors} failed accesses without a gate`);
    plain.push(p.accesses / p.elapsed_s);
    const listener = await startFloor({ floor: floorBin }, mountDir, (FLOOD_S + 120) * 1000, 'cold');
    let f;
    try {
      f = await pass();
    } finally {
      floorEvents.push((await listener.stop()) / (f?.elapsed_s ?? 1));
    }
    if (f.errors > 0) throw new Error(`parallel-read: ${f.errors} failed accesses under the C listener`);
    floorAccesses.push(f.accesses / f.elapsed_s);
    let batches = 0;
    let events = 0;
    const gate = new Gate({
      deadlineMs: 10_000,
      maxPending: 8192,
      maxPendingPerUid: 8192,
      onEvents: (batch: GateEvent[]) => {
        batches++;
        events += batch.length;
        for (const e of batch) {
          if (e.kind === 'perm') gate.native.answer(e.id, FAN_ALLOW);
        }
      },
    });
    try {
      await gate.guard(mountDir, 'filesystem', 'read');
      const before = gate.native.stats();
      const cpu0 = threadCpu();
      const g = await pass();
      const cpu1 = threadCpu();
      const after = gate.native.stats();
      if (g.errors > 0) throw new Error(`parallel-read: ${g.errors} failed accesses through the gate`);
      gated.push(g.accesses / g.elapsed_s);
      forwarded.push((after.answeredByJs - before.answeredByJs) / g.elapsed_s);
      perBatch.push(events / Math.max(1, batches));
      held += after.heldForSyscall - before.heldForSyscall;
      heldExpired += after.heldExpired - before.heldExpired;
      notByJs += after.answeredByDeadline - before.answeredByDeadline + after.answeredOverload - before.answeredOverload + after.answeredUidShare - before.answeredUidShare;
      const busy = (which: (k: string) => boolean) => [...cpu1].filter(([k]) => which(k)).reduce((a, [k, v]) => a + v - (cpu0.get(k) ?? 0), 0) / g.elapsed_s * 100;
      main.push(busy((k) => k.endsWith(`:${process.pid}`)));
      reader.push(busy((k) => k.startsWith('blessd-gate:')));
      lat = latencyDelta(after.latencyUs, before.latencyUs).map((v, i) => v + (lat[i] ?? 0));
    } finally {
      gate.close();
    }
  }
  return {
    threads,
    plainPerS: median(plain),
    floorPerS: median(floorAccesses),
    floorEventsPerS: median(floorEvents),
    gatePerS: median(gated),
    forwardedPerS: median(forwarded),
    perBatch: median(perBatch),
    p50: latencyPercentile(lat, 0.5),
    p99: latencyPercentile(lat, 0.99),
    readerCpu: median(reader),
    mainCpu: median(main),
    notByJs,
    held,
    heldExpired,
  };
}

runMain(main);
