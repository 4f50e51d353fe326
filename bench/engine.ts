// bench/engine: the `signature` engine's own speed, against ClamAV on the same files and the same databases, in the
// same run. One question per table:
//  1. one 4 KiB scan with the shipped databases (µs per scan; baseline: reading the same 4 KiB; and the engine's
//     JS path, scanInJs, that the native pass replaced);
//  2. MB/s per core on files ≥ 1 MiB: 1,000,000 SHA-256 / MD5 hash signatures, 10,000 body patterns — blessd's
//     engine in this process (native pass, and its JS path) vs clamscan (CPU time minus its own load time) vs clamd
//     (its CPU time for SCAN); for hash databases the digest alone, by Node (JS loop of readSync + Hash.update) and
//     by a C loop of pread + EVP (bench/native/digest-floor.c, the floor for reading a file); for body patterns,
//     the JavaScript Aho–Corasick blessd used before (literal patterns, as many as fit);
//  2b. OpenSSL's own ceiling (`openssl speed -evp`, one cached buffer, no read);
//  3. loading 1,000,000 hash signatures: time and peak RSS of a fresh process.
// Databases are written here by hand (no freshclam). Files are random bytes: nothing matches, every byte is read.
// Run it under the machine's bench lock: `flock /work/bench.lock npm run bench:engine`.
// ENGINE_CLAMAV=0 leaves out clamscan and clamd (minutes of database loading), ENGINE_LOAD=0 table 3.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile, copyFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadDatabases } from '../actors/signature/database.js';
import { SignatureEngine } from '../actors/signature/engine.js';
import { AhoCorasick } from './engine/aho-corasick-js.js';
import { cpuSeconds } from './lib/proc.js';
import { median, note, printTable, runMain, writeResult } from './lib/report.js';

const run = promisify(execFile);
const MiB = 1 << 20;
const LARGE_FILES = Number(process.env.ENGINE_FILES ?? 8);
const LARGE_SIZE = 16 * MiB;
const SMALL_FILES = 2000;
const HASH_SIGS = 1_000_000;
const BODY_SIGS = 10_000;
const ROUNDS = Number(process.env.ENGINE_ROUNDS ?? 3);
const WITH_CLAMAV = process.env.ENGINE_CLAMAV !== '0';
const WITH_LOAD = process.env.ENGINE_LOAD !== '0';

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

async function writeHashDb(path: string, algo: 'md5' | 'sha256', size: number, real: string[]): Promise<void> {
  const len = algo === 'md5' ? 16 : 32;
  const lines: string[] = new Array(HASH_SIGS);
  for (let i = 0; i < HASH_SIGS; i++) lines[i] = `${randomHex(len)}:${size}:Bench.Hash.${i}`;
  // A few real ones (of files not in the scanned set) keep the table honest: they must be found.
  real.forEach((r, i) => (lines[i] = r));
  await writeFile(path, lines.join('\n') + '\n');
}

/** 10,000 body patterns: 70 % literal, 20 % with ?? wildcards, 10 % with {n-m} gaps; random bytes, no matches. */
async function writeBodyDb(path: string, n = BODY_SIGS, literalOnly = false): Promise<string[]> {
  const lines: string[] = [];
  const literals: string[] = [];
  for (let i = 0; i < n; i++) {
    const kind = literalOnly ? 0 : i % 10;
    let hex: string;
    if (kind < 7) hex = randomHex(12 + (i % 9));
    else if (kind < 9) hex = `${randomHex(6)}????${randomHex(6)}`;
    else hex = `${randomHex(6)}{4-16}${randomHex(6)}`;
    if (kind < 7) literals.push(hex);
    lines.push(`Bench.Body.${i}:0:*:${hex}`);
  }
  await writeFile(path, lines.join('\n') + '\n');
  return literals;
}

/** blessd's engine over the files, single-threaded in this process: CPU seconds and wall seconds. */
function engineScan(engine: SignatureEngine, files: string[], path: 'native' | 'js' = 'native'): { cpu: number; wall: number; hits: number } {
  let hits = 0;
  const c0 = cpuNow();
  const w0 = performance.now();
  for (const f of files) {
    const fd = openSync(f, 'r');
    try {
      const size = statSync(f).size;
      if (path === 'native' ? engine.scan(fd, size) : engine.scanInJs(fd, size)) hits++;
    } finally {
      closeSync(fd);
    }
  }
  return { cpu: cpuNow() - c0, wall: (performance.now() - w0) / 1000, hits };
}

/** clamscan's CPU for the files, minus its CPU for loading the same database (an empty file scanned). */
async function clamscanCpu(db: string, files: string[], empty: string): Promise<{ cpu: number; load: number; hits: number }> {
  const once = async (targets: string[]) => {
    const before = process.resourceUsage();
    const child = spawn('clamscan', ['--no-summary', '--stdout', '--max-filesize=200M', '--max-scansize=400M', '--bytecode=no', '-d', db, ...targets], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.resume();
    await new Promise((r) => child.on('close', r));
    void before;
    return out;
  };
  // Child CPU time comes from /usr/bin/time-like accounting: resourceUsage covers this process only, so read the
  // children's totals from process.cpuUsage's sibling: /proc/self/stat cutime/cstime.
  const childCpu = async () => {
    const { readFile } = await import('node:fs/promises');
    const stat = await readFile('/proc/self/stat', 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100;
  };
  let c = await childCpu();
  await once([empty]);
  const load = (await childCpu()) - c;
  c = await childCpu();
  const out = await once(files);
  const total = (await childCpu()) - c;
  return { cpu: Math.max(0.001, total - load), load, hits: out.split('\n').filter((l) => l.endsWith(' FOUND')).length };
}

interface Clamd {
  pid: number;
  scan(path: string): Promise<string>;
  stop(): Promise<void>;
}

async function startClamd(dir: string, databases: string): Promise<Clamd> {
  const sock = join(dir, 'clamd.sock');
  const conf = join(dir, 'clamd.conf');
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await writeFile(conf, `LocalSocket ${sock}\nForeground yes\nDatabaseDirectory ${databases}\nLogFile ${join(dir, 'clamd.log')}\nTemporaryDirectory ${join(dir, 'tmp')}\nUser root\nBytecode no\nMaxFileSize 200M\nMaxScanSize 400M\nMaxThreads 1\nConcurrentDatabaseReload no\n`);
  const child = spawn('clamd', [`--config-file=${conf}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const started = Date.now();
  while (!existsSync(sock)) {
    if (child.exitCode !== null) throw new Error(`clamd exited: ${err}`);
    if (Date.now() - started > 300_000) throw new Error('clamd did not open its socket within 300 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const scan = (path: string) =>
    new Promise<string>((resolve, reject) => {
      const s = createConnection(sock);
      let out = '';
      s.setEncoding('utf8');
      s.on('data', (d) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
      s.write(`zSCAN ${path}\0`);
    });
  return {
    pid: child.pid!,
    scan,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r(null) : child.on('close', r)));
    },
  };
}

/** bench/native/digest-floor.c, built here; null (the column stays empty) without OpenSSL's headers (libssl-dev). */
async function buildDigestFloor(dir: string): Promise<string | null> {
  const bin = join(dir, 'digest-floor');
  try {
    await run('gcc', ['-O2', '-Wall', '-o', bin, join(process.cwd(), 'bench', 'native', 'digest-floor.c'), '-lcrypto']);
    return bin;
  } catch (err) {
    note(`digest-floor not built (needs gcc and libssl-dev): ${(err as Error).message.split('\n')[0]}`);
    return null;
  }
}

async function main() {
  const base = await mkdtemp(join(tmpdir(), 'blessd-bench-engine-'));
  const clamds: Clamd[] = [];
  try {
    const filesDir = join(base, 'files');
    const smallDir = join(base, 'small');
    await mkdir(filesDir);
    await mkdir(smallDir);
    const large: string[] = [];
    for (let i = 0; i < LARGE_FILES; i++) {
      const p = join(filesDir, `large-${i}.bin`);
      await writeFile(p, randomBytes(LARGE_SIZE));
      large.push(p);
    }
    const small: string[] = [];
    for (let i = 0; i < SMALL_FILES; i++) {
      const p = join(smallDir, `small-${i}.bin`);
      await writeFile(p, randomBytes(4096));
      small.push(p);
    }
    const empty = join(base, 'empty.bin');
    await writeFile(empty, '');
    const totalMB = (LARGE_FILES * LARGE_SIZE) / 1e6;

    // Databases, each in its own directory (clamd takes a directory).
    const dbs: Record<string, string> = {};
    const mk = async (name: string) => {
      const d = join(base, 'db', name);
      await mkdir(d, { recursive: true });
      dbs[name] = d;
      return d;
    };
    // A real detection in each hash set, of a file that is not scanned for speed, proves the table is loaded.
    const probe = randomBytes(LARGE_SIZE);
    const probeFile = join(base, 'probe.bin');
    await writeFile(probeFile, probe);
    await writeHashDb(join(await mk('sha256-1M'), 'bench.hsb'), 'sha256', LARGE_SIZE, [`${createHash('sha256').update(probe).digest('hex')}:${LARGE_SIZE}:Bench.Probe`]);
    await writeHashDb(join(await mk('md5-1M'), 'bench.hdb'), 'md5', LARGE_SIZE, [`${createHash('md5').update(probe).digest('hex')}:${LARGE_SIZE}:Bench.Probe`]);
    const literals = await writeBodyDb(join(await mk('body-10k'), 'bench.ndb'));
    const acLiterals = literals.slice(0, 3000); // the JS automaton's 65535-state limit
    await writeFile(join(await mk('body-3k-literal'), 'bench.ndb'), acLiterals.map((hx, i) => `Bench.Lit.${i}:0:*:${hx}`).join('\n') + '\n');
    const shipped = await mk('shipped');
    for (const f of await readdir(join(process.cwd(), 'signatures'))) await copyFile(join(process.cwd(), 'signatures', f), join(shipped, f));
    await chmod(base, 0o755);

    // ---- 1. one 4 KiB scan, shipped databases --------------------------------------------------------------
    const shippedEngine = new SignatureEngine(await loadDatabases([shipped]), 1 << 20);
    // A ClamAV-like set for the same files: every 4 KiB file is hashed (an MD5 .hdb naming that size) and streamed
    // through 10,000 body patterns, so the crossings and allocations per file show.
    const md5Small = join(await mk('md5-4k'), 'small.hdb');
    await writeFile(md5Small, Array.from({ length: 1000 }, (_, i) => `${randomHex(16)}:4096:Bench.Small.${i}`).join('\n') + '\n');
    const fullEngine = new SignatureEngine(await loadDatabases([shipped, dbs['body-10k']!, md5Small]), 1 << 20);
    const perFull: number[] = [];
    const perFullJs: number[] = [];
    const fds = small.map((p) => openSync(p, 'r'));
    const buf = Buffer.allocUnsafe(4096);
    const perScan: number[] = [];
    const perJs: number[] = [];
    const perRead: number[] = [];
    for (let r = 0; r < ROUNDS * 3; r++) {
      let c0 = cpuNow();
      for (const fd of fds) readSync(fd, buf, 0, 4096, 0);
      perRead.push(((cpuNow() - c0) * 1e6) / fds.length);
      c0 = cpuNow();
      for (const fd of fds) shippedEngine.scan(fd, 4096);
      perScan.push(((cpuNow() - c0) * 1e6) / fds.length);
      c0 = cpuNow();
      for (const fd of fds) shippedEngine.scanInJs(fd, 4096);
      perJs.push(((cpuNow() - c0) * 1e6) / fds.length);
      c0 = cpuNow();
      for (const fd of fds) fullEngine.scan(fd, 4096);
      perFull.push(((cpuNow() - c0) * 1e6) / fds.length);
      c0 = cpuNow();
      for (const fd of fds) fullEngine.scanInJs(fd, 4096);
      perFullJs.push(((cpuNow() - c0) * 1e6) / fds.length);
    }
    for (const fd of fds) closeSync(fd);
    const scanUs = median(perScan);
    const jsUs = median(perJs);
    const readUs = median(perRead);
    printTable(`bench/engine 1: one 4 KiB scan, shipped databases (${SMALL_FILES} files, ${ROUNDS * 3} interleaved rounds, CPU µs)`, [
      { row: 'pread of the 4 KiB (floor)', 'µs per file': readUs.toFixed(1), '× floor': '1.00×' },
      { row: 'signature engine scan (native pass)', 'µs per file': scanUs.toFixed(1), '× floor': `${(scanUs / readUs).toFixed(2)}×` },
      { row: 'signature engine, JS path (before)', 'µs per file': jsUs.toFixed(1), '× floor': `${(jsUs / readUs).toFixed(2)}×` },
      { row: '+ 10,000 body patterns + MD5 of every file: native pass', 'µs per file': median(perFull).toFixed(1), '× floor': `${(median(perFull) / readUs).toFixed(2)}×` },
      { row: '+ 10,000 body patterns + MD5 of every file: JS path', 'µs per file': median(perFullJs).toFixed(1), '× floor': `${(median(perFullJs) / readUs).toFixed(2)}×` },
    ]);
    const floorBin = await buildDigestFloor(base);

    // ---- 2. throughput per core ------------------------------------------------------------------------------
    const rows: Record<string, string | number>[] = [];
    const data: Record<string, unknown> = {};
    for (const name of ['sha256-1M', 'md5-1M', 'body-10k', 'body-3k-literal']) {
      const engine = new SignatureEngine(await loadDatabases([dbs[name]!]), 1 << 20);
      const probeHit = name.endsWith('-1M') ? engineScan(engine, [probeFile]).hits : null;
      const clamd = WITH_CLAMAV ? await startClamd(join(base, `clamd-${name}`), dbs[name]!) : null;
      if (clamd) clamds.push(clamd);
      const ours: number[] = [];
      const jsPath: number[] = [];
      const cFloor: number[] = [];
      const scan: number[] = [];
      const daemon: number[] = [];
      const js: number[] = [];
      const digestOnly: number[] = [];
      const algo = name === 'sha256-1M' ? 'sha256' : name === 'md5-1M' ? 'md5' : null;
      const ac = name === 'body-3k-literal' ? new AhoCorasick(acLiterals.map((hx) => Buffer.from(hx, 'hex'))) : null;
      for (let r = 0; r < ROUNDS; r++) {
        const e = engineScan(engine, large);
        ours.push(totalMB / e.cpu);
        jsPath.push(totalMB / engineScan(engine, large, 'js').cpu);
        if (clamd) {
          const c = await clamscanCpu(dbs[name]!, large, empty);
          scan.push(totalMB / c.cpu);
          const before = await cpuSeconds(clamd.pid);
          const reply = await clamd.scan(filesDir);
          if (!/OK/.test(reply)) throw new Error(`clamd: ${reply}`);
          daemon.push(totalMB / Math.max(0.001, (await cpuSeconds(clamd.pid)) - before));
        }
        if (algo && floorBin) {
          const { stdout } = await run(floorBin, [algo, String(1 << 20), ...large]);
          cFloor.push(Number(stdout.split(' ')[0]));
        }
        if (algo) {
          // The floor for a hash database: the same digest over the same bytes, nothing else.
          const c0 = cpuNow();
          const chunk = Buffer.allocUnsafe(1 << 20);
          for (const f of large) {
            const fd = openSync(f, 'r');
            const hh = createHash(algo);
            for (let pos = 0; pos < LARGE_SIZE; pos += chunk.length) hh.update(chunk.subarray(0, readSync(fd, chunk, 0, chunk.length, pos)));
            hh.digest();
            closeSync(fd);
          }
          digestOnly.push(totalMB / (cpuNow() - c0));
        }
        if (ac) {
          const c0 = cpuNow();
          const chunk = Buffer.allocUnsafe(1 << 20);
          for (const f of large) {
            const fd = openSync(f, 'r');
            const st = ac.stream();
            for (let pos = 0; pos < LARGE_SIZE; pos += chunk.length) st.push(chunk.subarray(0, readSync(fd, chunk, 0, chunk.length, pos)));
            closeSync(fd);
          }
          js.push(totalMB / (cpuNow() - c0));
        }
      }
      const o = median(ours);
      const s = clamd ? median(scan) : NaN;
      const d = clamd ? median(daemon) : NaN;
      const j = median(jsPath);
      const cf = cFloor.length > 0 ? median(cFloor) : NaN;
      rows.push({
        database: name,
        'blessd MB/s/core': o.toFixed(0),
        'JS path (before) MB/s': j.toFixed(0),
        '× JS path': `${(o / j).toFixed(2)}×`,
        'node digest alone MB/s': algo ? median(digestOnly).toFixed(0) : '',
        '× node digest': algo ? `${(o / median(digestOnly)!).toFixed(2)}×` : '',
        'C pread+EVP MB/s': algo && Number.isFinite(cf) ? cf.toFixed(0) : '',
        '× C loop': algo && Number.isFinite(cf) ? `${(o / cf).toFixed(2)}×` : '',
        'clamscan MB/s/core': clamd ? s.toFixed(0) : 'skipped',
        'clamd MB/s/core': clamd ? d.toFixed(0) : 'skipped',
        '× clamd': clamd ? `${(o / d).toFixed(1)}×` : '',
        'JS Aho–Corasick MB/s': ac ? median(js).toFixed(0) : '',
        'probe found': probeHit === null ? '' : probeHit === 1 ? 'yes' : 'NO',
      });
      data[name] = { ours, jsPath, cFloor, scan, daemon, js, digestOnly };
      await clamd?.stop();
    }
    printTable(`bench/engine 2: MB/s per core (CPU time), ${LARGE_FILES} × 16 MiB random files, ${ROUNDS} interleaved rounds, medians`, rows);
    // The ceiling of a hash database is the digest itself: OpenSSL's own loop over one cached 1 MiB buffer.
    const ceilings: Record<string, string | number>[] = [];
    for (const algo of ['sha256', 'md5']) {
      const { stdout } = await run('openssl', ['speed', '-evp', algo, '-bytes', String(1 << 20), '-seconds', '2'], { maxBuffer: 1 << 20 }).catch(() => ({ stdout: '' }));
      const m = new RegExp(`^${algo}\\s+([0-9.]+)k`, 'm').exec(stdout);
      const row = rows.find((r) => r['database'] === `${algo}-1M`);
      const ceiling = m ? (Number(m[1]) * 1000) / 1e6 : NaN;
      ceilings.push({
        algo,
        'openssl speed MB/s (1 MiB blocks)': Number.isFinite(ceiling) ? ceiling.toFixed(0) : 'n/a',
        'C pread+EVP MB/s': String(row?.['C pread+EVP MB/s'] ?? ''),
        'blessd MB/s/core': String(row?.['blessd MB/s/core'] ?? ''),
        '× openssl': Number.isFinite(ceiling) && row ? `${(Number(row['blessd MB/s/core']) / ceiling).toFixed(2)}×` : '',
      });
    }
    printTable('bench/engine 2b: the digest ceiling, same run (openssl speed -evp ALGO -bytes 1048576, one core)', ceilings);
    note('blessd: the signature engine in this process, one thread (native pass; JS path = scanInJs, the engine before it). node digest alone: readSync + Hash.update over the same files. C pread+EVP: bench/native/digest-floor.c, the same reads and digest with no JS (the system libcrypto, the same OpenSSL 3.0 series as Node\'s). clamscan: its CPU minus its CPU for the same database on an empty file. clamd: its CPU for zSCAN of the directory (MaxThreads 1).');

    // ---- 3. loading a million hash signatures ------------------------------------------------------------------
    const loads: Record<string, string | number>[] = [];
    for (const name of WITH_LOAD ? ['sha256-1M', 'md5-1M', 'body-10k'] : []) {
      const times: number[] = [];
      const cpus: number[] = [];
      const rss: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const { stdout } = await run(process.execPath, [join(process.cwd(), 'dist/bench/engine/load-child.js'), dbs[name]!], { maxBuffer: 1 << 20 });
        const j = JSON.parse(stdout) as { ms: number; cpuMs: number; rssMB: number };
        times.push(j.ms);
        cpus.push(j.cpuMs);
        rss.push(j.rssMB);
      }
      loads.push({ database: name, 'load s (wall)': (median(times) / 1000).toFixed(2), 'load s (CPU)': (median(cpus) / 1000).toFixed(2), 'peak RSS MB (whole process)': median(rss).toFixed(0) });
    }
    if (WITH_LOAD) printTable(`bench/engine 3: loading in a fresh process (${ROUNDS} rounds, medians)`, loads);
    const loadAvg = (await import('node:os')).loadavg();
    note(`load average during the run: ${loadAvg.map((x) => x.toFixed(1)).join(' / ')} (2 cores, shared with other work)`);
    const file = writeResult('engine', { scan4k: { scanUs, jsUs, readUs, perScan, perJs, perRead, perFull, perFullJs }, throughput: rows, ceilings, raw: data, loads, loadAvg });
    console.log('written', file);
  } finally {
    for (const c of clamds) await c.stop().catch(() => {});
    await rm(base, { recursive: true, force: true });
  }
}

runMain(main);
