// Question: what does a tree guard cost for files outside its tree, on the same filesystem?
// A tree guard is a filesystem mark: the first access to each inode outside the tree raises an event that the
// native thread answers alone after checking where the inode sits (native/fanotify/trees.cc); an evictable ignore
// mark then silences that inode. Rows, interleaved per round, each on files nobody has opened since they were
// written: no gate (baseline); tree guard, first access outside the tree (one check each); the same files again
// (ignore marks only). The check's own cost is timed on the native thread (stats().trees.checkNs).
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Gate } from '../src/gate/gate.js';
import { FAN_ALLOW, type GateEvent } from '../src/gate/types.js';
import { makeScratch } from '../test/helpers/scratch.js';
import { median, printTable, writeResult, runMain, note } from './lib/report.js';

const run = promisify(execFile);
const FILES = Number(process.env.BENCH_FILES ?? 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

interface Sample { n: number; median_us: number; p99_us: number; mean_us: number }

async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench/trees needs root (fanotify, loop mounts)');
  const scratch = await makeScratch('ext4', 256);
  const bin = join(scratch.base, 'open-read');
  await run('gcc', ['-O2', '-o', bin, join(process.cwd(), 'bench/native/open-read.c')]);
  await mkdir(join(scratch.dir, 'tree'));
  const body = Buffer.alloc(4096, 0x42);
  const fill = async (dir: string) => {
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < FILES; i++) await writeFile(join(dir, `f${String(i).padStart(5, '0')}`), body);
    return dir;
  };
  const pass = async (dir: string): Promise<Sample> => JSON.parse((await run(bin, [dir, String(FILES), '1'])).stdout);

  const rows: Record<string, Sample[]> = { 'no gate': [], 'tree guard, first access outside the tree': [], 'tree guard, again (ignore marks)': [] };
  let checks = 0;
  let checkNs = 0;
  let forwarded = 0;
  try {
    await pass(await fill(join(scratch.dir, 'out/warm'))); // warm the binary and the dentry cache paths
    for (let r = 0; r < ROUNDS; r++) {
      rows['no gate'].push(await pass(await fill(join(scratch.dir, `out/base${r}`))));
      const fresh = await fill(join(scratch.dir, `out/fresh${r}`));
      const gate = new Gate({
        deadlineMs: 10_000,
        onEvents: (batch: GateEvent[]) => {
          for (const e of batch) {
            if (e.kind === 'perm') gate.native.answer(e.id, FAN_ALLOW);
          }
        },
      });
      try {
        await gate.guard(join(scratch.dir, 'tree'), 'tree', 'read');
        rows['tree guard, first access outside the tree'].push(await pass(fresh));
        rows['tree guard, again (ignore marks)'].push(await pass(fresh));
        const s = gate.native.stats();
        checks += s.trees.checks;
        checkNs += s.trees.checkNs;
        forwarded += s.forwarded;
      } finally {
        gate.close();
      }
    }
  } finally {
    await scratch.cleanup();
  }
  const summary = (ss: Sample[]) => ({ median_us: median(ss.map((s) => s.median_us)), p99_us: median(ss.map((s) => s.p99_us)), mean_us: median(ss.map((s) => s.mean_us)) });
  const base = summary(rows['no gate']).median_us;
  const table = Object.entries(rows).map(([row, ss]) => {
    const s = summary(ss);
    return { row, 'median µs': s.median_us.toFixed(2), 'p99 µs': s.p99_us.toFixed(2), 'ratio (median)': (s.median_us / base).toFixed(2) + '×' };
  });
  printTable(`bench/trees: open+pread(4 KiB)+close outside a tree guard, ${FILES} fresh files × ${ROUNDS} rounds, ext4 image`, table);
  const meanCheckUs = checkNs / Math.max(1, checks) / 1000;
  note(`outside check on the native thread: ${meanCheckUs.toFixed(2)} µs mean over ${checks} checks; events sent to JS: ${forwarded}`);
  console.log('written', writeResult('trees', { files: FILES, rounds: ROUNDS, meanCheckUs, checks, forwarded, rows: Object.entries(rows).map(([row, ss]) => ({ row, ...summary(ss), ratio: summary(ss).median_us / base })) }));
}

runMain(main);
