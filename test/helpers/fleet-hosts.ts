// A fleet on one machine, for the fleet tests and bench/fleet: a private network (netns.ts), a redis-server the
// test starts on its own namespace address (or a Redis Cluster, one node per namespace: redis-cluster.ts), and one
// blessd per host namespace, each guarding its OWN scratch ext4
// image, all sharing one fleet key. The test process reaches redis directly (reachFromTest) to look at keys and to
// forge values. Everything is removed at teardown, also on failure: daemons and redis are SIGKILLed, images
// unmounted, namespaces deleted.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { EICAR } from './actor-files.js';
import { runChild, type ChildResult } from './child.js';
import { REPO } from './daemon-harness.js';
import { BLESSCTL, startDaemonProcess, type DaemonChild } from './daemon-process.js';
import { withNet, type Net } from './netns.js';
import { startRedisCluster, type RedisCluster } from './redis-cluster.js';
import { startRedisServer } from './redis-server.js';
import { makeScratch, type Scratch } from './scratch.js';
import { makePki, redisCliTlsArgs, redisTlsArgs, type Pki } from './tls-pki.js';
import { waitFor } from './wait.js';

type Teardown = { teardown(fn: () => void | Promise<void>): void };

export const REDIS_PORT = 6379;

export interface FleetHost {
  name: string;
  scratch: Scratch;
  dir: string;
  socket: string;
  configFile: string;
  daemon(): DaemonChild;
  /** Start (again) on the same config. */
  start(): Promise<void>;
  /** `blessctl ARGS --socket S`, bounded. */
  ctl(args: string[], timeoutMs?: number): Promise<ChildResult>;
  /** `blessctl stats --json`. */
  stats(): Promise<{ scans: Record<string, number>; fleet?: Record<string, number> }>;
}

export interface Fleet {
  net: Net;
  hosts: Record<string, FleetHost>;
  redisAddr: string;
  storeUrl: string;
  keyFile: string;
  redis(): ChildProcess;
  /** Start redis-server (again) in its namespace; resolves once it accepts connections. */
  startRedis(): Promise<void>;
  /** `redis-cli ARGS` from the test's namespace, bounded. */
  cli(args: string[]): Promise<string>;
  /** With `cluster`: the cluster (redis(), startRedis() and cli() are about the single store and throw). */
  cluster?: RedisCluster;
  /** With `tls`: the certificates. */
  pki?: Pki;
}

export interface FleetOptions {
  /** The stack of every host (default: YARA_STACK, a scanner the store serves). */
  stack?: string;
  /** The stack of some hosts, by name (default: `stack`). */
  stacks?: Record<string, string>;
  /** fleet.timeout (default 1s: a loaded test machine connects slowly; the timeout test sets its own). */
  timeout?: string;
  /** Where the hosts find the store (default: the redis host's address). */
  storeUrl?: (redisAddr: string) => string;
  /** Image size per host. */
  sizeMiB?: number;
  /** Extra config lines for every host. */
  extra?: string;
  /** Do not start the daemons (the test starts them). */
  noStart?: boolean;
  /** The store is a Redis Cluster of this many masters (at least 3), each on a namespace of its own (r1, r2, …). */
  cluster?: number;
  /**
   * The store speaks TLS only (certificates made here, tls-pki.ts; Fleet.pki): the URL is rediss:// (one Redis) or
   * rediss+cluster:// (`cluster`), and every host's fleet.tls is these lines (default: the CA and the client
   * certificate).
   */
  tls?: true | ((pki: Pki, host: string) => string);
  /** With `tls`, one Redis: the one name (a DNS SAN) its certificate carries instead of its IP address. */
  storeName?: string;
}

/** The built-in signature scanner alone: the store serves none of it, so this stack makes no store traffic. */
export const SIGNATURE_STACK = `stack:
  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: default
    options: { answer: allow }
`;

/** YARA with a rule for the EICAR test file, then allow: the scanner the fleet tests share (src/fleet/scope.ts). */
export const YARA_STACK = `stack:
  - actor: yara
    options: { rules: [${join(REPO, 'test', 'fixtures', 'fleet-eicar.yar')}] }
  - actor: default
    options: { answer: allow }
`;

/**
 * The signature pass, then YARA with a rule that names files holding EVIL-MARKER, then allow: a stack with a content
 * pass and a scanner the store serves. The rule file lives in a directory of its own, removed at the test's end.
 */
export async function signatureMarkerStack(t: { teardown(fn: () => Promise<void> | void): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'blessd-marker-rule-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const rules = join(dir, 'marker.yar');
  await writeFile(rules, 'rule evil_marker {\n  strings:\n    $m = "EVIL-MARKER"\n  condition:\n    $m\n}\n');
  return `stack:
  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: yara
    options: { rules: [${rules}] }
  - actor: default
    options: { answer: allow }
`;
}

/** Two served pool scanners (yara, and the same engine named yara2): a file needs both, so its lookup asks for two keys. */
export const TWO_POOL_SCANNERS = `stack:
  - actor: yara
    options: { rules: [${join(REPO, 'test', 'fixtures', 'fleet-eicar.yar')}] }
  - actor: yara
    name: yara2
    options: { rules: [${join(REPO, 'test', 'fixtures', 'fleet-eicar.yar')}] }
  - actor: default
    options: { answer: allow }
`;

export async function withFleet(t: Teardown, names: string[], opts: FleetOptions = {}): Promise<Fleet> {
  const storeHosts = opts.cluster === undefined ? ['redis'] : Array.from({ length: opts.cluster }, (_, i) => `r${i + 1}`);
  const net = await withNet(t as never, [...names, ...storeHosts], { reachFromTest: true });
  const base = await mkdtemp(join(tmpdir(), 'blessd-fleet-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const keyFile = join(base, 'fleet.key');
  await writeFile(keyFile, randomBytes(32), { mode: 0o600 });
  await chmod(keyFile, 0o600);
  const redisHost = net.hosts[storeHosts[0]!]!;
  const redisAddr = redisHost.addr;
  let redis: ChildProcess | undefined;
  const single = () => {
    if (cluster) throw new Error('this fleet stores in a cluster: use fleet.cluster');
  };
  const certNames = opts.storeName === undefined ? {} : { [redisAddr]: opts.storeName };
  const pki = opts.tls ? await makePki(t, storeHosts.map((n) => net.hosts[n]!.addr), certNames) : undefined;
  const startRedis = async () => {
    single();
    redis = await startRedisServer(redisHost, REDIS_PORT, base, pki ? redisTlsArgs(pki, redisAddr, REDIS_PORT, { cluster: false }) : []);
  };
  const cluster = opts.cluster === undefined ? undefined : await startRedisCluster(storeHosts.map((n) => net.hosts[n]!), base, pki ? { tls: pki } : {});
  const tlsLines = (host: string) => (!pki || !opts.tls ? '' : opts.tls === true ? `  tls: { ca: ${pki.ca}, cert: ${pki.clientCert}, key: ${pki.clientKey} }\n` : opts.tls(pki, host));
  if (!cluster) await startRedis();
  const storeUrl = opts.storeUrl ? opts.storeUrl(redisAddr) : (cluster?.url ?? `${pki ? 'rediss' : 'redis'}://${redisAddr}:${REDIS_PORT}`);
  const hosts: Record<string, FleetHost> = {};
  for (const name of names) {
    const scratch = await makeScratch('ext4', opts.sizeMiB ?? 64);
    t.teardown(() => scratch.cleanup());
    const state = join(scratch.base, 'state');
    const socket = join(scratch.base, 'blessd.sock');
    const configFile = join(scratch.base, 'config.yaml');
    await writeFile(
      configFile,
      `stateDir: ${state}
socket: { path: ${socket} }
guards: [{ path: ${scratch.dir}, kind: filesystem }]
log: { level: info }
# Written files are judged at their first read, not in the background after their close: the tests count scans.
pool: { rescan: onRead }
${opts.stacks?.[name] ?? opts.stack ?? YARA_STACK}fleet:
  store: ${storeUrl}
  keyFile: ${keyFile}
  timeout: ${opts.timeout ?? '1s'}
  host: ${name}
${tlsLines(name)}${opts.extra ?? ''}`,
    );
    const runs: DaemonChild[] = [];
    const ctl = (args: string[], timeoutMs = 10_000) => runChild(process.execPath, [BLESSCTL, ...args, '--socket', socket], { timeoutMs });
    const host: FleetHost = {
      name,
      scratch,
      dir: scratch.dir,
      socket,
      configFile,
      daemon: () => runs[runs.length - 1]!,
      async start() {
        runs.push(await startDaemonProcess(t, configFile, net.hosts[name]!.prefix()));
      },
      ctl,
      async stats() {
        const r = await ctl(['stats', '--json']);
        if (r.code !== 0) throw new Error(`blessctl stats on ${name}: ${r.stderr}`);
        return JSON.parse(r.stdout).stats ?? JSON.parse(r.stdout);
      },
    };
    hosts[name] = host;
    if (!opts.noStart) await host.start();
  }
  const cli = async (args: string[]) => {
    single();
    // A certificate naming a DNS name: redis-cli checks it against --sni.
    const tls = pki ? [...redisCliTlsArgs(pki), ...(opts.storeName === undefined ? [] : ['--sni', opts.storeName])] : [];
    const r = await runChild('redis-cli', ['-h', redisAddr, '-p', String(REDIS_PORT), ...tls, ...args], { timeoutMs: 5_000 });
    if (r.code !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const redisChild = () => (single(), redis!);
  return { net, hosts, redisAddr, storeUrl, keyFile, redis: redisChild, startRedis, cli, ...(cluster ? { cluster } : {}), ...(pki ? { pki } : {}) };
}

/** A fleet counter of `h` (`blessctl stats`: hits, misses, published, refused, unavailable). */
export async function fleetCount(h: FleetHost, k: string): Promise<number> {
  return (await h.stats()).fleet?.[k] ?? 0;
}

/**
 * The same `files` (name -> content) written on every host, then read on the first one — judged there — until it
 * published one verdict per file. Returns the first host's reads, by name, for the test to check.
 */
export async function judgedOnFirst(hosts: FleetHost[], files: Record<string, Buffer>): Promise<Record<string, ChildResult>> {
  const first = hosts[0]!;
  for (const h of hosts) for (const [name, content] of Object.entries(files)) await writeFile(join(h.dir, name), content);
  const reads: Record<string, ChildResult> = {};
  for (const name of Object.keys(files)) reads[name] = await runChild('cat', [join(first.dir, name)], { timeoutMs: 15_000 });
  const n = Object.keys(files).length;
  await waitFor(`${first.name} published ${n} verdicts`, async () => (await fleetCount(first, 'published')) === n, 10_000, 50);
  return reads;
}

type Asserts = {
  is(actual: unknown, expected: unknown, message?: string): void;
  true(value: boolean, message?: string): void;
  regex(s: string, re: RegExp, message?: string): void;
};

/**
 * After judgedOnFirst with `clean.txt` (`clean`) and `eicar.com` (EICAR): both read on `h`, whose yara answers come
 * from the store — the clean file reads, EICAR is denied by the first host's deny, no yara scan ran on `h`, two
 * hits, and no lookup went unanswered.
 */
export async function takenFromStore(t: Asserts, h: FleetHost, clean: Buffer, via: string): Promise<void> {
  const c = await runChild('cat', [join(h.dir, 'clean.txt')], { timeoutMs: 15_000 });
  t.is(c.stdout, clean.toString(), `${h.name} reads clean.txt: ${c.stderr}`);
  const e = await runChild('cat', [join(h.dir, 'eicar.com')], { timeoutMs: 15_000 });
  t.regex(e.stderr, /Operation not permitted/, `the first host's deny holds on ${h.name}`);
  const stats = await h.stats();
  t.is(stats.scans['yara'] ?? 0, 0, `${h.name} scanned nothing with yara`);
  t.is(stats.fleet?.['hits'] ?? 0, 2, `yara's two answers, taken from ${via}`);
  t.is(stats.fleet?.['unavailable'] ?? 0, 0, `${h.name}'s lookups all answered: ${h.daemon().log()}`);
}

/**
 * Writes `count` clean files and `count` EICAR files on `h` and reads each once, with no store to answer: every clean
 * file reads, every EICAR file is denied by the local scan, each within 3 s (a lookup waits at most fleet.timeout,
 * 1 s, then the file is scanned). `body(i)` makes the files' content (the same on every host: a store reached would
 * answer the second host). Then the yara scans: one a file; one extra is tolerated — on a loaded CI machine one run
 * in a few showed one more on one host since the pool worker concludes cold files (a conclusion declined as
 * changed is scanned again, which is safe) — a missing one never.
 */
export async function readFreshLocally(t: Asserts, h: FleetHost, count: number, body: (i: number) => string): Promise<void> {
  const before = (await h.stats()).scans['yara'] ?? 0;
  for (let i = 0; i < count; i++) {
    const clean = join(h.dir, `clean-${i}`);
    const evil = join(h.dir, `evil-${i}`);
    await writeFile(clean, `clean file ${body(i)}\n`);
    await writeFile(evil, Buffer.concat([EICAR, Buffer.from(`\n${body(i)}\n`)]));
    const c = await runChild('cat', [clean], { timeoutMs: 15_000 });
    t.is(c.code, 0, `${h.name} clean-${i}: ${c.stderr}`);
    t.true(c.ms < 3_000, `${h.name} clean-${i} took ${Math.round(c.ms)} ms`);
    const e = await runChild('cat', [evil], { timeoutMs: 15_000 });
    t.regex(e.stderr, /Operation not permitted/, `${h.name} evil-${i} denied by the local scan`);
    t.true(e.ms < 3_000, `${h.name} evil-${i} took ${Math.round(e.ms)} ms`);
  }
  const n = ((await h.stats()).scans['yara'] ?? 0) - before;
  t.true(n >= 2 * count && n <= 2 * count + 1, `${h.name} scanned every file locally: ${n} yara scans for ${2 * count} files`);
}

/**
 * Bytes the daemon of `h` got from read/pread so far (/proc/<pid>/io rchar: page cache or not, every thread), for
 * tests that count how often a file is read.
 */
export async function daemonRchar(h: FleetHost): Promise<number> {
  const pid = h.daemon().child.pid!;
  // ip netns exec execs blessd in place: the pid is the daemon's own (checked, or the numbers would be ip's).
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
  if (!cmdline.includes('blessd.js')) throw new Error(`pid ${pid} is not blessd: ${cmdline}`);
  const io = await readFile(`/proc/${pid}/io`, 'utf8');
  return Number(/^rchar: (\d+)$/m.exec(io)![1]);
}

/** `size` bytes, the same on every call, not compressible into a pattern a scanner could skip: SHA-256 in counter mode. */
export function incompressible(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i * 32 < size; i++) createHash('sha256').update(`block ${i}`).digest().copy(out, i * 32);
  return out;
}

/**
 * The fleet tests' share check: `clean` (as clean.txt) and EICAR (eicar.com) judged on `first` — it reads the one,
 * is denied the other, scans both with yara and publishes both, under the content's SHA-256 (`keys` lists the
 * store's yara keys, one per verdict: a key on two cluster nodes would show twice) — then taken on `second` from
 * the store with zero yara scans (takenFromStore).
 */
export async function sharedFromFirst(t: Asserts, first: FleetHost, second: FleetHost, clean: Buffer, store: { keys: () => Promise<string[]>; via: string }): Promise<void> {
  const onFirst = await judgedOnFirst([first, second], { 'clean.txt': clean, 'eicar.com': EICAR });
  t.is(onFirst['clean.txt']!.stdout, clean.toString());
  t.regex(onFirst['eicar.com']!.stderr, /Operation not permitted/);
  const stats = await first.stats();
  t.is(stats.scans['yara'] ?? 0, 2);
  t.is(stats.fleet?.['unavailable'] ?? 0, 0, `${first.name}'s lookups all answered: ${first.daemon().log()}`);
  const keys = await store.keys();
  t.is(keys.length, 2, `${first.name}'s two verdicts are in ${store.via}, once each: ${keys.join(' ')}`);
  for (const c of [clean, EICAR]) {
    const digest = createHash('sha256').update(c).digest('hex');
    t.true(keys.some((k) => k.endsWith(`:${digest}`)), `a key for ${digest}`);
  }
  await takenFromStore(t, second, clean, store.via);
}
