// Question — the fleet store (docs/fleet.md): three hosts hold the same N files (each its own ext4 image, the same
// bytes in each), and each reads all of them once, one host after the other. How many scans does the fleet run,
// and how long do the first reads take, with the shared verdict store and without it — and what does a store hit
// cost a file?
// Each host is a blessd in its own network namespace (test/helpers/netns.ts), the store a redis-server in another:
// traffic crosses a veth pair and a bridge, as on one machine it can (a LAN adds its round trip). The files exist
// before the daemons start (the worker batch path; files written while a daemon runs go the scan path, which
// shares the same way). Readers: BENCH_FLEET_READERS processes at once per host, each a slice of the files.
// Rounds alternate without and with the store (BENCH_FLEET_ROUNDS, default 1 each; 2 with BENCH_FULL), so the
// machine's drift falls on both alike; ratios compare rows of the same run.
// BENCH_FLEET_STACK: `signature` (default: the built-in signature scanner alone, which makes no store traffic —
// docs/fleet.md says why) or `yara` (the signature scanner and a YARA rule: the store spares yara). BENCH_FLEET_SIZE
// sets the file size (16777216 with BENCH_FLEET_FILES=20 for large files). `reads/file` is the daemon's
// /proc/<pid>/io rchar over the host's pass ÷ (N × size): how many times blessd (all threads) read each file.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { contentDigest } from '../src/fleet/digest.js';
import { FleetFile } from '../src/fleet/share.js';
import { Redis } from 'ioredis';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeNet, type Net } from '../test/helpers/netns.js';
import { startDaemonProcess, BLESSCTL, type DaemonChild } from '../test/helpers/daemon-process.js';
import { makeScratch, type Scratch } from '../test/helpers/scratch.js';
import { runChild as runTestChild } from '../test/helpers/child.js';
import { access, buildTools, makeFiles, type Tools } from './lib/native.js';
import { cpuSeconds } from './lib/proc.js';
import { envInt, FULL, printTable, ratio, requireRoot, summarize, us, writeResult, note, runMain } from './lib/report.js';

const N = envInt('BENCH_FLEET_FILES', 10_000);
const SIZE = envInt('BENCH_FLEET_SIZE', 4096);
const READERS = envInt('BENCH_FLEET_READERS', 4);
const ROUNDS = envInt('BENCH_FLEET_ROUNDS', FULL ? 2 : 1);
const HOSTS = ['h1', 'h2', 'h3'];
const PORT = 6379;
const STACK = process.env['BENCH_FLEET_STACK'] ?? 'signature';
if (STACK !== 'signature' && STACK !== 'yara') throw new Error(`BENCH_FLEET_STACK must be signature or yara, got ${JSON.stringify(STACK)}`);
/** tags.stamp of every host: `content` puts every cold file on the scan path (the worker batch serves no content stamps). */
const STAMP = process.env['BENCH_FLEET_STAMP'] ?? 'ctime';
if (STAMP !== 'ctime' && STAMP !== 'content') throw new Error(`BENCH_FLEET_STAMP must be ctime or content, got ${JSON.stringify(STAMP)}`);

interface HostRow {
  round: number;
  store: boolean;
  host: string;
  scans: number;
  /** yara's scans (the yara stack), else 0. */
  yaraScans: number;
  /** The daemon's rchar over the pass ÷ (N × SIZE). */
  reads: number;
  hits: number;
  misses: number;
  published: number;
  lookupUs: number;
  /** The daemon's CPU (all threads) per file over the host's pass, µs. */
  cpuUs: number;
  wallS: number;
  p50: number;
  p99: number;
  errors: number;
}

async function oneRound(tools: Tools, base: string, round: number, store: boolean): Promise<HostRow[]> {
  const teardowns: (() => unknown)[] = [];
  const t = { teardown: (fn: () => unknown) => void teardowns.push(fn) };
  let net: Net | undefined;
  const scratches: Scratch[] = [];
  const rows: HostRow[] = [];
  try {
    net = await makeNet([...HOSTS, 'redis']);
    const keyFile = join(base, 'fleet.key');
    await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
    const redisHost = net.hosts.redis!;
    const rules = join(base, 'bench.yar');
    // A rule no bench file matches (mkfiles' bytes): yara reads every file and finds nothing, as on clean content.
    await writeFile(rules, 'rule bench_marker {\n  strings:\n    $m = "BENCH-FLEET-NEVER-THERE"\n  condition:\n    $m\n}\n');
    if (store) {
      const redis = redisHost.spawn('redis-server', ['--bind', redisHost.addr, '--port', String(PORT), '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error('redis-server not ready in 10 s')), 10_000);
        redis.stdout!.setEncoding('utf8').on('data', (d: string) => ((out += d), out.includes('Ready to accept') && (clearTimeout(timer), resolve())));
        redis.once('exit', (c) => (clearTimeout(timer), reject(new Error(`redis-server exited ${c}: ${out}`))));
      });
    }
    // Each host: its own image with the same files (mkfiles' content depends on the index only), its own daemon.
    const sockets: string[] = [];
    const pids: number[] = [];
    const daemons: DaemonChild[] = [];
    for (const name of HOSTS) {
      const s = await makeScratch('ext4', Math.max(128, Math.ceil((N * Math.max(SIZE, 4096) * 1.3) / 2 ** 20) + 64));
      scratches.push(s);
      await makeFiles(tools, { dir: s.dir, count: N, size: SIZE });
      const socket = join(s.base, 'blessd.sock');
      sockets.push(socket);
      const config = join(s.base, 'config.yaml');
      await writeFile(
        config,
        `stateDir: ${join(s.base, 'state')}
socket: { path: ${socket} }
guards: [{ path: ${s.dir}, kind: filesystem }]
log: { level: warn }
pool: { threads: 2 }
${STAMP === 'content' ? 'tags: { stamp: content }\n' : ''}stack:
  - actor: signature
    options: { databases: [${join(process.cwd(), 'signatures')}] }
${STACK === 'yara' ? `  - actor: yara\n    options: { rules: [${rules}] }\n` : ''}  - actor: default
    options: { answer: allow }
${store ? `fleet: { store: "redis://${redisHost.addr}:${PORT}", keyFile: ${keyFile}, timeout: 200ms, host: ${name} }\n` : ''}`,
      );
      // BENCH_PROFILE=DIR: V8 CPU profiles of every daemon thread (main and pool workers), per round and host,
      // written when the daemon stops (bench/profile.ts reads them).
      const profile = process.env['BENCH_PROFILE'];
      const node = profile ? ['sh', '-c', `exec "$0" --cpu-prof --cpu-prof-dir=${join(profile, `${store ? 'store' : 'local'}-${round}-${name}`)} "$@"`] : [];
      const d = await startDaemonProcess(t, config, [...net.hosts[name]!.prefix(), ...node]);
      daemons.push(d);
      pids.push(d.child.pid!);
    }
    // One host after the other: the first meets every file first; the others find the store filled.
    for (const [i, name] of HOSTS.entries()) {
      const dir = scratches[i]!.dir;
      const per = Math.ceil(N / READERS);
      const cpu0 = await cpuSeconds(pids[i]!);
      const rchar0 = await rchar(pids[i]!);
      const started = performance.now();
      const parts = await Promise.all(
        Array.from({ length: READERS }, (_, r) => {
          const start = r * per;
          const n = Math.min(per, N - start);
          return n > 0 ? access(tools, { dir, start, count: n, samples: true, timeoutMs: 600_000 }, base) : null;
        }),
      );
      const wallS = (performance.now() - started) / 1000;
      const cpuUs = (((await cpuSeconds(pids[i]!)) - cpu0) * 1e6) / N;
      const reads = ((await rchar(pids[i]!)) - rchar0) / (N * SIZE);
      const samples = parts.flatMap((p) => (p?.samples ? [...p.samples] : []));
      const errors = parts.reduce((a, p) => a + (p?.errors ?? 0), 0);
      const sum = summarize(samples);
      const st = JSON.parse((await runTestChild(process.execPath, [BLESSCTL, 'stats', '--json', '--socket', sockets[i]!], { timeoutMs: 10_000 })).stdout);
      const fleet = st.fleet ?? {};
      rows.push({
        round,
        store,
        host: name,
        scans: st.scans?.signature ?? 0,
        yaraScans: st.scans?.yara ?? 0,
        reads,
        hits: fleet.hits ?? 0,
        misses: fleet.misses ?? 0,
        published: fleet.published ?? 0,
        lookupUs: fleet.hits + fleet.misses > 0 ? fleet.lookupUs / (fleet.hits + fleet.misses) : NaN,
        cpuUs,
        wallS,
        p50: sum.p50,
        p99: sum.p99,
        errors,
      });
    }
    // Stopped, not killed: a clean stop is part of the run (and writes the profiles).
    for (const d of daemons) await d.kill('SIGTERM');
    return rows;
  } finally {
    for (const fn of teardowns.reverse()) await Promise.resolve(fn()).catch(() => {});
    await net?.cleanup();
    for (const s of scratches) await s.cleanup();
  }
}

/**
 * A store hit on its own, with the daemon's own code (src/fleet/share.ts: digest, MGET, MAC check) in this process:
 * M files of SIZE bytes, published once, then looked up one after the other. Wall time per hit (the round trip
 * included) and this process's CPU per hit; the same files' digest alone as the floor.
 */
async function hitCost(tools: Tools, base: string): Promise<{ wallP50: number; wallMean: number; cpuUs: number; digestUs: number; bareP50: number; bareCpuUs: number; m: number }> {
  const M = envInt('BENCH_FLEET_HITS', 2000);
  const net = await makeNet(['redis'], { reachFromTest: true });
  const s = await makeScratch('ext4', Math.max(128, Math.ceil((M * 4096 * 1.3) / 2 ** 20) + 64));
  try {
    const r = net.hosts.redis!;
    const redis = r.spawn('redis-server', ['--bind', r.addr, '--port', String(PORT), '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => redis.stdout!.setEncoding('utf8').on('data', (d: string) => d.includes('Ready to accept') && resolve()));
    await makeFiles(tools, { dir: s.dir, count: M, size: SIZE });
    const policy = { url: `redis://${r.addr}:${PORT}`, key: new Uint8Array(randomBytes(32)), timeoutMs: 1000, ttlS: 3600, origin: 'bench' };
    const wanted = new Map([['signature', 'bench#0']]);
    const fds = Array.from({ length: M }, (_, i) => openSync(join(s.dir, `f${String(i).padStart(7, '0')}`), 'r'));
    try {
      for (const fd of fds) {
        const f = new FleetFile(policy, fd, SIZE, wanted);
        if ((await f.shared('signature')) === undefined) f.publish('signature', { answer: 'ok' });
      }
      // The publishes are not awaited by the daemon either: wait until the store holds them all.
      const check = new Redis(policy.url);
      for (let i = 0; i < 100 && Number(await check.dbsize()) < M; i++) await new Promise((res) => setTimeout(res, 50));
      check.disconnect();
      const digest0 = process.cpuUsage();
      for (const fd of fds) contentDigest(fd, SIZE);
      const d = process.cpuUsage(digest0);
      const samples: number[] = [];
      const cpu0 = process.cpuUsage();
      for (const fd of fds) {
        const t0 = performance.now();
        const got = await new FleetFile(policy, fd, SIZE, wanted).shared('signature');
        samples.push((performance.now() - t0) * 1000);
        if (got?.answer !== 'ok') throw new Error('bench:fleet: a published verdict was not found');
      }
      const c = process.cpuUsage(cpu0);
      const sum = summarize(samples);
      // The baseline: a bare MGET of one key through ioredis, the same connection settings, the same number of times.
      const bare = new Redis(policy.url, { enableAutoPipelining: true });
      await bare.set('bench:bare', 'x');
      const bareSamples: number[] = [];
      const b0 = process.cpuUsage();
      for (let i = 0; i < M; i++) {
        const t0 = performance.now();
        await bare.mgetBuffer('bench:bare');
        bareSamples.push((performance.now() - t0) * 1000);
      }
      const b = process.cpuUsage(b0);
      bare.disconnect();
      return { wallP50: sum.p50, wallMean: samples.reduce((a, x) => a + x, 0) / M, cpuUs: (c.user + c.system) / M, digestUs: (d.user + d.system) / M, bareP50: summarize(bareSamples).p50, bareCpuUs: (b.user + b.system) / M, m: M };
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  } finally {
    await net.cleanup();
    await s.cleanup();
  }
}

/** Bytes the process's threads got from read(2)-like calls, page cache or not (proc(5) /proc/<pid>/io). */
async function rchar(pid: number): Promise<number> {
  return Number(/^rchar: (\d+)$/m.exec(await readFile(`/proc/${pid}/io`, 'utf8'))![1]);
}

async function main() {
  requireRoot('bench:fleet');
  const base = await mkdtemp(join(tmpdir(), 'blessd-bench-fleet-'));
  try {
    const tools = await buildTools(base);
    note(`stack: ${STACK === 'yara' ? 'signature + yara' : 'signature alone'}, tags.stamp: ${STAMP}; ${HOSTS.length} hosts × ${N} files of ${SIZE} B, ${READERS} readers per host, hosts one after the other; ${ROUNDS} round(s) each way`);
    const rows: HostRow[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      rows.push(...(await oneRound(tools, base, r, false)));
      rows.push(...(await oneRound(tools, base, r, true)));
    }
    printTable(
      'bench:fleet — first reads on each host',
      rows.map((x) => ({
        round: x.round,
        store: x.store ? 'yes' : 'no',
        host: x.host,
        scans: x.scans,
        ...(STACK === 'yara' && { 'yara scans': x.yaraScans }),
        'reads/file': x.reads.toFixed(2),
        hits: x.hits,
        published: x.published,
        'wall s': x.wallS.toFixed(2),
        'files/s': Math.round(N / x.wallS),
        'p50 µs': us(x.p50),
        'p99 µs': us(x.p99),
        'lookup µs': us(x.lookupUs),
        'CPU µs/file': us(x.cpuUs),
        errors: x.errors,
      })),
    );
    const total = (store: boolean, k: 'scans' | 'yaraScans' | 'wallS' | 'reads') => rows.filter((x) => x.store === store).reduce((a, x) => a + x[k], 0) / ROUNDS;
    const later = (store: boolean, k: 'p50' | 'wallS' | 'cpuUs') => {
      const xs = rows.filter((x) => x.store === store && x.host !== HOSTS[0]);
      return xs.reduce((a, x) => a + x[k], 0) / xs.length;
    };
    const hitLookup = rows.filter((x) => x.store && x.host !== HOSTS[0]);
    const summary = {
      scansWithout: total(false, 'scans'),
      scansWith: total(true, 'scans'),
      scansRatio: ratio(total(true, 'scans'), total(false, 'scans')),
      yaraScansWithout: total(false, 'yaraScans'),
      yaraScansWith: total(true, 'yaraScans'),
      readsWithout: total(false, 'reads') / HOSTS.length,
      readsWith: total(true, 'reads') / HOSTS.length,
      wallWithout: total(false, 'wallS'),
      wallWith: total(true, 'wallS'),
      wallRatio: ratio(total(true, 'wallS'), total(false, 'wallS')),
      laterHostsP50Without: later(false, 'p50'),
      laterHostsP50With: later(true, 'p50'),
      laterHostsP50Ratio: ratio(later(true, 'p50'), later(false, 'p50')),
      laterHostsCpuWithout: later(false, 'cpuUs'),
      laterHostsCpuWith: later(true, 'cpuUs'),
      laterHostsCpuRatio: ratio(later(true, 'cpuUs'), later(false, 'cpuUs')),
      /** A hit's own cost: digest + one round trip to the store, measured in the worker (mean over the later hosts). */
      hitLookupUs: hitLookup.reduce((a, x) => a + x.lookupUs, 0) / hitLookup.length,
    };
    printTable('bench:fleet — summary (ratios: with the store ÷ without, same run)', [
      { what: 'signature scans, all hosts', without: summary.scansWithout, with: summary.scansWith, ratio: summary.scansRatio },
      ...(STACK === 'yara' ? [{ what: 'yara scans, all hosts', without: summary.yaraScansWithout, with: summary.yaraScansWith, ratio: ratio(summary.yaraScansWith, summary.yaraScansWithout) }] : []),
      { what: 'reads of each file by blessd (rchar), mean over hosts', without: summary.readsWithout.toFixed(2), with: summary.readsWith.toFixed(2), ratio: ratio(summary.readsWith, summary.readsWithout) },
      { what: 'wall s, all hosts', without: summary.wallWithout.toFixed(2), with: summary.wallWith.toFixed(2), ratio: summary.wallRatio },
      { what: 'p50 µs per first read, hosts 2 and 3', without: us(summary.laterHostsP50Without), with: us(summary.laterHostsP50With), ratio: summary.laterHostsP50Ratio },
      { what: 'daemon CPU µs per file, hosts 2 and 3', without: us(summary.laterHostsCpuWithout), with: us(summary.laterHostsCpuWith), ratio: summary.laterHostsCpuRatio },
      { what: 'store hit: digest + round trip, µs (mean)', without: '-', with: us(summary.hitLookupUs), ratio: '-' },
    ]);
    // BENCH_FLEET_HITS=0 skips it (large files: M of them would not fit an image).
    const hit = envInt('BENCH_FLEET_HITS', 2000) > 0 ? await hitCost(tools, base) : undefined;
    if (hit) printTable(`bench:fleet — one store hit (src/fleet/share.ts in this process, ${hit.m} files of ${SIZE} B, one at a time)`, [
      { what: 'wall per hit, p50 µs (digest + round trip + MAC)', value: us(hit.wallP50), 'bare MGET (baseline)': us(hit.bareP50), ratio: ratio(hit.wallP50, hit.bareP50) },
      { what: 'wall per hit, mean µs', value: us(hit.wallMean), 'bare MGET (baseline)': '-', ratio: '-' },
      { what: 'CPU per hit, µs', value: us(hit.cpuUs), 'bare MGET (baseline)': us(hit.bareCpuUs), ratio: ratio(hit.cpuUs, hit.bareCpuUs) },
      { what: 'CPU of the digest alone, µs', value: us(hit.digestUs), 'bare MGET (baseline)': '-', ratio: '-' },
    ]);
    writeResult('fleet', { stack: STACK, stamp: STAMP, n: N, size: SIZE, readers: READERS, rounds: ROUNDS, rows, summary, hit });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

runMain(main);
