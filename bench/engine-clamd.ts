// bench/engine-clamd: what the recommended production stack costs per file — the `clamd` actor (each worker's
// IDSESSION, the file passed with FILDES) against the built-in `signature` actor, both through blessd's scan pool,
// on the same database directory and the same files, interleaved in the same run. Questions:
//  1. small files (4 KiB): files per second (wall) and CPU per file — blessd's process plus clamd's;
//  2. large files (16 MiB): MB/s (wall) and MB per CPU-second.
// The database is written here (no freshclam): 10,000 body patterns (.ndb) plus the shipped EICAR databases; the
// files are random bytes (nothing matches, every byte is read) and one EICAR file that both must deny.
// clamd runs with MaxThreads 2 (the machine's cores), the pool with 2 threads, clamd's maxConcurrent 4.
// Run it under the machine's bench lock: `flock /work/bench.lock npm run bench:engine-clamd`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, fstatSync, openSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanPool, type PoolEntry, type ScanOutcome } from '../src/pool/scan-pool.js';
import { cpuSeconds } from './lib/proc.js';
import { envInt, median, note, printTable, ratio, runMain, writeResult } from './lib/report.js';

const MiB = 1 << 20;
const SMALL = envInt('CLAMD_BENCH_SMALL', 2000);
const LARGE = envInt('CLAMD_BENCH_LARGE', 8);
const ROUNDS = envInt('CLAMD_BENCH_ROUNDS', 3);
const IN_FLIGHT = 16;
const EICAR = Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*', 'latin1');

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function writeBodyDb(path: string, n: number): Promise<void> {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const kind = i % 10;
    const hex = (b: number) => randomBytes(b).toString('hex');
    const body = kind < 7 ? hex(12 + (i % 9)) : kind < 9 ? `${hex(6)}????${hex(6)}` : `${hex(6)}{4-16}${hex(6)}`;
    lines.push(`Bench.Body.${i}:0:*:${body}`);
  }
  await writeFile(path, lines.join('\n') + '\n');
}

async function startClamd(dir: string, databases: string): Promise<{ pid: number; socket: string; stop(): Promise<void> }> {
  const socket = join(dir, 'clamd.sock');
  const conf = join(dir, 'clamd.conf');
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await writeFile(
    conf,
    `LocalSocket ${socket}\nForeground yes\nDatabaseDirectory ${databases}\nLogFile ${join(dir, 'clamd.log')}\nTemporaryDirectory ${join(dir, 'tmp')}\n` +
      `User root\nBytecode no\nMaxFileSize 200M\nMaxScanSize 400M\nStreamMaxLength 200M\nMaxThreads 2\nMaxQueue 64\nAlertExceedsMax yes\nConcurrentDatabaseReload no\n`,
  );
  const child = spawn('clamd', [`--config-file=${conf}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const started = Date.now();
  while (!existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`clamd exited: ${err}`);
    if (Date.now() - started > 300_000) throw new Error('clamd did not open its socket within 300 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid!,
    socket,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.on('close', r)));
    },
  };
}

interface Pass {
  wall: number;
  cpu: number;
  denied: number;
  errors: string[];
}

/** Every file through the pool with IN_FLIGHT scans at once; wall seconds and CPU seconds (ours + clamd's). */
async function pass(pool: ScanPool, entry: PoolEntry, files: string[], clamdPid?: number): Promise<Pass> {
  const fds = files.map((f) => openSync(f, 'r'));
  const sizes = fds.map((fd) => fstatSync(fd).size);
  const errors: string[] = [];
  let denied = 0;
  try {
    const c0 = cpuNow() + (clamdPid ? await cpuSeconds(clamdPid) : 0);
    const w0 = performance.now();
    let next = 0;
    const lane = async () => {
      while (next < fds.length) {
        const i = next++;
        const o: ScanOutcome = await pool.scan({ fd: fds[i]!, size: sizes[i]!, path: files[i]! }, entry, { timeoutMs: 120_000 });
        if (o.kind === 'error') errors.push(`${files[i]}: ${o.code} ${o.message}`);
        else if (o.answer === 'deny') denied++;
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
    const wall = (performance.now() - w0) / 1000;
    const cpu = cpuNow() + (clamdPid ? await cpuSeconds(clamdPid) : 0) - c0;
    return { wall, cpu, denied, errors };
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

async function main() {
  const base = await mkdtemp(join(tmpdir(), 'blessd-bench-clamd-'));
  let clamd: Awaited<ReturnType<typeof startClamd>> | undefined;
  const pool = new ScanPool({ threads: 2, loadTimeoutMs: 300_000 });
  try {
    const db = join(base, 'db');
    await mkdir(db);
    await writeBodyDb(join(db, 'bench.ndb'), 10_000);
    for (const f of readdirSync(join(process.cwd(), 'signatures'))) copyFileSync(join(process.cwd(), 'signatures', f), join(db, f));
    const smallDir = join(base, 'small');
    const largeDir = join(base, 'large');
    await mkdir(smallDir);
    await mkdir(largeDir);
    const small: string[] = [];
    for (let i = 0; i < SMALL; i++) {
      const p = join(smallDir, `s${i}.bin`);
      await writeFile(p, randomBytes(4096));
      small.push(p);
    }
    const eicar = join(smallDir, 'eicar.com');
    await writeFile(eicar, EICAR);
    small.push(eicar);
    const large: string[] = [];
    for (let i = 0; i < LARGE; i++) {
      const p = join(largeDir, `l${i}.bin`);
      await writeFile(p, randomBytes(16 * MiB));
      large.push(p);
    }
    await chmod(base, 0o755);
    clamd = await startClamd(join(base, 'clamd'), db);

    const entries: Record<string, PoolEntry> = {
      signature: { name: 'signature', actor: 'signature', options: { databases: [db] } },
      clamd: { name: 'clamd', actor: 'clamd', options: { socket: clamd.socket, timeoutMs: 120_000, maxConcurrent: 4, streamMaxLength: 200 * MiB } },
    };
    for (const e of Object.values(entries)) await pool.describe(e); // databases loaded in every worker first
    // Warm both (clamd's first FILDES scans go by INSTREAM until its pid is reported: not what is measured).
    for (const e of Object.values(entries)) {
      await pass(pool, e, small.slice(0, 50));
      await pass(pool, e, large.slice(0, 2));
    }

    const results: Record<string, { small: Pass[]; large: Pass[] }> = { signature: { small: [], large: [] }, clamd: { small: [], large: [] } };
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of r % 2 === 0 ? ['signature', 'clamd'] : ['clamd', 'signature']) {
        const pid = name === 'clamd' ? clamd.pid : undefined;
        results[name]!.small.push(await pass(pool, entries[name]!, small, pid));
        results[name]!.large.push(await pass(pool, entries[name]!, large, pid));
      }
    }
    const totalMB = (LARGE * 16 * MiB) / 1e6;
    const row = (name: string) => {
      const s = results[name]!.small;
      const l = results[name]!.large;
      return {
        filesPerS: median(s.map((p) => small.length / p.wall))!,
        cpuMsPerFile: median(s.map((p) => (p.cpu * 1000) / small.length))!,
        mbPerS: median(l.map((p) => totalMB / p.wall))!,
        mbPerCpuS: median(l.map((p) => totalMB / p.cpu))!,
        denied: s.map((p) => p.denied),
        errors: [...s, ...l].flatMap((p) => p.errors).slice(0, 5),
      };
    };
    const sig = row('signature');
    const cd = row('clamd');
    printTable(`bench/engine-clamd: the clamd actor vs the signature actor through the scan pool, same databases and files (${SMALL} × 4 KiB + EICAR, ${LARGE} × 16 MiB, ${ROUNDS} interleaved rounds, medians)`, [
      { actor: 'signature (in-process)', '4 KiB files/s': sig.filesPerS.toFixed(0), 'CPU ms per 4 KiB file': sig.cpuMsPerFile.toFixed(3), '16 MiB MB/s (wall)': sig.mbPerS.toFixed(0), 'MB per CPU-s': sig.mbPerCpuS.toFixed(0), 'EICAR denied': sig.denied.join('/'), errors: sig.errors.length },
      {
        actor: 'clamd (FILDES, IDSESSION)',
        '4 KiB files/s': `${cd.filesPerS.toFixed(0)} (${ratio(cd.filesPerS, sig.filesPerS)})`,
        'CPU ms per 4 KiB file': `${cd.cpuMsPerFile.toFixed(3)} (${ratio(cd.cpuMsPerFile, sig.cpuMsPerFile)})`,
        '16 MiB MB/s (wall)': `${cd.mbPerS.toFixed(0)} (${ratio(cd.mbPerS, sig.mbPerS)})`,
        'MB per CPU-s': `${cd.mbPerCpuS.toFixed(0)} (${ratio(cd.mbPerCpuS, sig.mbPerCpuS)})`,
        'EICAR denied': cd.denied.join('/'),
        errors: cd.errors.length,
      },
    ]);
    note('CPU: this process (pool workers included) plus clamd for the clamd rows. Ratios are clamd / signature.');
    for (const e of [...sig.errors, ...cd.errors]) note(`error: ${e}`);
    const loadAvg = (await import('node:os')).loadavg();
    note(`load average during the run: ${loadAvg.map((x) => x.toFixed(1)).join(' / ')} (2 cores, shared with other work)`);
    console.log('written', writeResult('engine-clamd', { signature: sig, clamd: cd, raw: results, loadAvg }));
  } finally {
    await pool.close();
    await clamd?.stop().catch(() => {});
    await rm(base, { recursive: true, force: true });
  }
}

runMain(main);
