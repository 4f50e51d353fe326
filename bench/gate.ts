// Question: what does the gate cost per open+read+close of a small file?
// Three rows, one run, one ext4 image: no gate (baseline); gate with every file blessed (the kernel's ignore-mark
// check only); gate answering every event from JS (the round trip through the reader thread and the main thread).
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Gate } from '../src/gate/gate.js';
import { FAN_ALLOW, type GateEvent } from '../src/gate/types.js';
import { makeScratch } from '../test/helpers/scratch.js';
import { latencyDelta, latencyPercentile } from '../src/gate/latency.js';
import { median, printTable, writeResult, runMain } from './lib/report.js';

const run = promisify(execFile);
const FILES = Number(process.env.BENCH_FILES ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

interface Sample { n: number; median_us: number; p99_us: number; mean_us: number }

async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench/gate needs root (fanotify, loop mounts)');
  const scratch = await makeScratch('ext4', 128);
  const bin = join(scratch.base, 'open-read');
  await run('gcc', ['-O2', '-o', bin, join(process.cwd(), 'bench/native/open-read.c')]);
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
          if (e.kind === 'open') gate.native.release(e.fd);
          else if (e.kind === 'perm') {
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
      gate.native.forgetAll();
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
  console.log('written', writeResult('gate', { files: FILES, rounds: ROUNDS, rows: rows.map((r) => ({ row: r.row, ...r.s, ratio: r.s.median_us / base, events: r.events, roundTripP99: (r as any).roundTripP99 })) }));
}

runMain(main);
