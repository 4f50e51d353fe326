// Question — what does the preload library cost a program?
// 1. Warm: open + read(4 KiB) + close of a tagged file, with LD_PRELOAD=libblessd-preload.so against without it
//    (target: at most 1.5x). Two shapes: one file over and over (the tag's bytes repeat: the MAC check is
//    remembered), and many distinct tagged files (every access verifies a MAC). A floor row makes the system calls of
//    the library's first check (fstat, FS_IOC_GETVERSION, getxattr) without the library: what no user-space work
//    can go under.
// 2. Cold: the first read of a new file (the library runs the must-pass scanner inside read()) against the same
//    scanner run directly on the file by a plain fork + exec (the cost of the scan itself).
// On a private ext4 image with 512-byte inodes (tags live in the inode). The machine is shared and noisy, so rows
// are interleaved: BENCH_CYCLES cycles of [without, with], each a fresh process; a row's number is the median over
// cycles of the per-process median.
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeBenchFs } from './lib/benchfs.js';
import { buildTools, makeFiles } from './lib/native.js';
import { envInt, median, note, printTable, ratio, requireRoot, runMain, us, writeResult } from './lib/report.js';

const run = promisify(execFile);
const LIB = join(process.cwd(), 'build/Release/libblessd-preload.so');
const CYCLES = envInt('BENCH_CYCLES', 5);
const MANY = envInt('BENCH_PRELOAD_FILES', 500);
const REPEAT = envInt('BENCH_PRELOAD_REPEAT', 20_000);
const NEW = envInt('BENCH_PRELOAD_NEW', 50);

interface Cell {
  n: number;
  median_us: number;
  p99_us: number;
  mean_us: number;
}

async function main() {
  requireRoot('bench/preload');
  const fs = await makeBenchFs('ext4', { sizeMiB: 256, inodes: MANY + NEW * (CYCLES + 1) + 1000 });
  try {
    const tools = await buildTools(fs.base);
    const reader = join(fs.base, 'preload-read');
    await run('gcc', ['-O2', '-Wall', '-I', join(process.cwd(), 'bench/native'), '-o', reader, join(process.cwd(), 'bench/native/preload-read.c')]);
    const scanner = join(fs.base, 'scanner.sh');
    writeFileSync(scanner, '#!/bin/sh\nif grep -q EICAR-STANDARD-ANTIVIRUS-TEST-FILE; then echo Eicar; exit 1; fi\nexit 0\n');
    chmodSync(scanner, 0o755);
    const mustPass = join(fs.base, 'must-pass.d');
    mkdirSync(mustPass);
    symlinkSync(scanner, join(mustPass, 'sig'));
    const config = join(fs.base, 'preload.yaml');
    writeFileSync(config, `mustPass: ${mustPass}\npaths: [${fs.dir}]\n`);
    const state = join(fs.base, 'state');
    const withLib = { ...process.env, LD_PRELOAD: LIB, BLESSD_PRELOAD_CONFIG: config, XDG_STATE_HOME: state };
    const without = { ...process.env };
    delete without['LD_PRELOAD'];

    const many = join(fs.dir, 'many');
    const one = join(fs.dir, 'one');
    mkdirSync(many);
    mkdirSync(one);
    await makeFiles(tools, { dir: many, count: MANY, size: 4096 });
    await makeFiles(tools, { dir: one, count: 1, size: 4096 });
    const access = async (args: string[], env: NodeJS.ProcessEnv): Promise<Cell> => JSON.parse((await run(reader, args, { env, maxBuffer: 1 << 20 })).stdout) as Cell;
    // The tagging pass: every file scanned once by the library, which writes its tag.
    const t0 = performance.now();
    await access(['read', many, String(MANY), '1'], withLib);
    await access(['read', one, '1', '1'], withLib);
    const tagPassS = (performance.now() - t0) / 1000;

    const cells: Record<string, Cell[]> = {};
    const add = (row: string, c: Cell) => (cells[row] ??= []).push(c);
    for (let c = 0; c < CYCLES; c++) {
      add('one file, without', await access(['read', one, '1', String(REPEAT)], without));
      add('one file, with', await access(['read', one, '1', String(REPEAT)], withLib));
      add('many files, without', await access(['read', many, String(MANY), '1'], without));
      add('many files, with', await access(['read', many, String(MANY), '1'], withLib));
      add('many files, floor', await access(['floor', many, String(MANY), '1'], without));
      const fresh = join(fs.dir, `new-${c}`);
      mkdirSync(fresh);
      await makeFiles(tools, { dir: fresh, count: NEW, size: 4096 });
      add('new file, scanner run directly', await access(['direct', fresh, String(NEW), scanner], without));
      add('new file, first read with the library', await access(['read', fresh, String(NEW), '1'], withLib));
    }
    const med = (row: string) => median(cells[row]!.map((x) => x.median_us));
    const p99 = (row: string) => median(cells[row]!.map((x) => x.p99_us));
    const rows = [
      ['one tagged 4 KiB file, over and over', 'one file, without', 'one file, with'],
      [`${MANY} distinct tagged 4 KiB files`, 'many files, without', 'many files, with'],
      [`${MANY} distinct: the library's syscalls alone`, 'many files, without', 'many files, floor'],
      ['first read of a new 4 KiB file', 'new file, scanner run directly', 'new file, first read with the library'],
    ];
    printTable(
      `bench/preload: per access, median of ${CYCLES} interleaved cycles (ext4 image)`,
      rows.map(([what, base, lib]) => ({
        access: what!,
        baseline: base!.includes('directly') ? 'scanner run directly' : 'no library',
        'baseline µs': us(med(base!)),
        'with library µs': us(med(lib!)),
        ratio: ratio(med(lib!), med(base!)),
        'p99 baseline / with': `${us(p99(base!))} / ${us(p99(lib!))}`,
      })),
    );
    note(`Tagging pass (first scan of ${MANY + 1} files by the library): ${tagPassS.toFixed(1)} s. Target for the warm rows: ratio ≤ 1.5x.`);
    writeResult('preload', { cycles: CYCLES, files: MANY, repeat: REPEAT, fresh: NEW, cells, tagPassS });
  } finally {
    await fs.cleanup();
  }
}

runMain(main);
