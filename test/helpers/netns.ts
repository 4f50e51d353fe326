// Private networks for tests: several "hosts" on one machine, each a network namespace of its own, joined by veth
// pairs to a bridge that lives in a further namespace (the switch), so their traffic never touches the machine's
// own interfaces. Optionally one more veth joins the test process's own namespace to the switch (`reachFromTest`),
// for tests that talk to a host directly. Addresses come from a /24 picked at random in 198.18.0.0/15 (RFC 2544, for
// benchmarks: never routed, and unlikely to be used on the machine); the namespaces are named
// `blessd-<random>-<host>` so parallel test files never meet. Processes run inside with `ip netns exec`. Everything
// is removed on cleanup, also on failure (withNet registers the teardown), and on process exit if a test dies —
// like scratch.ts does for mounts: children started through a host are SIGKILLed first (a namespace lives on while
// a process is in it), then the namespaces are deleted, which destroys their veths and their peers.
//
// `ip netns exec` also gives the process a mount namespace of its own (a slave of ours, with its own /sys): mounts
// made by the test are seen inside, and blessd's guards are filesystem marks, so a daemon run inside guards the same
// scratch filesystem the test reads through its own mount.
import type { ExecutionContext } from 'ava';
import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { promisify } from 'node:util';
import { runChild, type ChildResult } from './child.js';

const run = promisify(execFile);

export interface NetHost {
  /** The short name the test gave it. */
  name: string;
  /** The network namespace's name (`ip netns exec NS ...`). */
  ns: string;
  /** Its IPv4 address on the private network. */
  addr: string;
  /** The argv prefix that runs a command inside (for startDaemonProcess and the like). */
  prefix(): string[];
  /** Spawn `cmd args` inside; the child is SIGKILLed at cleanup if it still runs. */
  spawn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Run `cmd args` inside to its end, bounded (default 10 s). */
  run(cmd: string, args: string[], opts?: { timeoutMs?: number; input?: string | Buffer }): Promise<ChildResult>;
}

export interface Net {
  /** The network, e.g. `198.18.37.0/24`. */
  subnet: string;
  hosts: Record<string, NetHost>;
  /** The test process's own address on the network, if it was asked for (`reachFromTest`). */
  testAddr?: string;
  /** Cut a host off (its veth down) or join it again: an unreachable peer without killing it. */
  setLink(host: string, up: boolean): Promise<void>;
  /** Kill what runs inside, delete the namespaces (idempotent). */
  cleanup(): Promise<void>;
}

export interface NetOptions {
  /** Also join the test process's namespace to the network (a veth in the root namespace). */
  reachFromTest?: boolean;
}

interface Live {
  namespaces: string[];
  children: Set<ChildProcess>;
}

const live = new Set<Live>();
process.once('exit', () => {
  for (const l of live) {
    for (const c of l.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of l.namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
  }
});

const ip = (...args: string[]) => run('ip', args);

/** `ip [-n NS] -batch -` with `lines`; rejects with ip's own message (which names the failing line). */
async function batch(ns: string | undefined, lines: string[]): Promise<void> {
  const r = await runChild('ip', [...(ns === undefined ? [] : ['-n', ns]), '-batch', '-'], { input: lines.join('\n') + '\n', timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`ip${ns === undefined ? '' : ` -n ${ns}`} -batch failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
}

/** A /24 in 198.18.0.0/15 that no route of the test's namespace uses yet (only reachable networks need one). */
async function pickSubnet(): Promise<string> {
  const routes = (await ip('-4', 'route', 'show')).stdout;
  for (;;) {
    const prefix = `198.${18 + randomInt(2)}.${randomInt(256)}`;
    if (!routes.includes(`${prefix}.`)) return prefix;
  }
}

/** Make namespaces for `names` (at most 200), joined on one private /24. */
export async function makeNet(names: string[], opts: NetOptions = {}): Promise<Net> {
  if (names.length === 0 || names.length > 200) throw new Error(`makeNet: 1 to 200 hosts, not ${names.length}`);
  for (const n of names) if (!/^[a-z0-9]{1,12}$/.test(n)) throw new Error(`makeNet: host name ${JSON.stringify(n)} is not [a-z0-9]{1,12}`);
  if (new Set(names).size !== names.length) throw new Error('makeNet: host names must differ');
  const tag = `blessd-${randomBytes(4).toString('hex')}`;
  const sw = `${tag}-sw`;
  const prefix = await pickSubnet();
  const state: Live = { namespaces: [], children: new Set() };
  live.add(state);
  const rootVeth = `bd${randomBytes(5).toString('hex')}`; // 12 characters: interface names hold 15
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    const exits = [...state.children].map((c) =>
      c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => (c.once('exit', () => resolve()), c.kill('SIGKILL'))),
    );
    await Promise.all(exits);
    // A namespace that was never made fails its del: harmless.
    for (const ns of state.namespaces) await ip('netns', 'del', ns).catch(() => {});
    if (opts.reachFromTest) await ip('link', 'del', rootVeth).catch(() => {}); // gone with its peer, normally
    live.delete(state);
  };
  try {
    // Three kinds of `ip -batch` (one process each) instead of one `ip` per step: making a network of four hosts
    // takes a quarter of the time. Namespaces are recorded before they exist, so a failure part way cleans up all.
    const addrs = names.map((_, i) => `${prefix}.${i + 10}`);
    const hostNs = names.map((name) => `${tag}-${name}`);
    state.namespaces.push(sw, ...hostNs);
    const root = [`netns add ${sw}`, ...hostNs.map((ns) => `netns add ${ns}`)];
    root.push(...hostNs.map((ns, i) => `link add eth0 netns ${ns} type veth peer name p${i} netns ${sw}`));
    await batch(undefined, root);
    await batch(sw, ['link set lo up', 'link add br0 type bridge', 'link set br0 up', ...names.map((_, i) => `link set p${i} master br0 up`)]);
    for (const [i, ns] of hostNs.entries()) await batch(ns, ['link set lo up', `addr add ${addrs[i]}/24 dev eth0`, 'link set eth0 up']);
    const hosts: Record<string, NetHost> = {};
    for (const [i, name] of names.entries()) {
      const ns = hostNs[i]!;
      const addr = addrs[i]!;
      const host: NetHost = {
        name,
        ns,
        addr,
        prefix: () => ['ip', 'netns', 'exec', ns],
        spawn(cmd, args, spawnOpts = {}) {
          const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], spawnOpts);
          state.children.add(child);
          child.once('exit', () => state.children.delete(child));
          return child;
        },
        run(cmd, args, runOpts = {}) {
          return runChild('ip', ['netns', 'exec', ns, cmd, ...args], runOpts);
        },
      };
      hosts[name] = host;
    }
    let testAddr: string | undefined;
    if (opts.reachFromTest) {
      testAddr = `${prefix}.1`;
      await ip('link', 'add', rootVeth, 'type', 'veth', 'peer', 'name', 'proot', 'netns', sw);
      await ip('-n', sw, 'link', 'set', 'proot', 'master', 'br0', 'up');
      await ip('addr', 'add', `${testAddr}/24`, 'dev', rootVeth);
      await ip('link', 'set', rootVeth, 'up');
    }
    const net: Net = {
      subnet: `${prefix}.0/24`,
      hosts,
      ...(testAddr === undefined ? {} : { testAddr }),
      async setLink(host, up) {
        const i = names.indexOf(host);
        if (i < 0) throw new Error(`setLink: no host ${host}`);
        await ip('-n', sw, 'link', 'set', `p${i}`, up ? 'up' : 'down');
      },
      cleanup,
    };
    await waitReachable(net);
    return net;
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * Every host is reachable from the first one (and from the test, if asked): a TCP connect to a closed port is
 * answered at once by a reset (ECONNREFUSED) when the peer is there, and times out or fails otherwise. The bridge
 * forwards as soon as its ports are up (no STP), but this proves it, so tests never race the network coming up.
 * One node process does every probe (no ping on a minimal machine). Bounded; throws naming the host on failure.
 */
const PROBE = `
const net = require('node:net');
const probe = (a) => new Promise((res) => {
  const s = net.connect({ host: a, port: 9 });
  const t = setTimeout(() => (s.destroy(), res(a + ': no answer in 3 s')), 3000);
  s.on('connect', () => (clearTimeout(t), s.destroy(), res(null)));
  s.on('error', (e) => (clearTimeout(t), res(e.code === 'ECONNREFUSED' ? null : a + ': ' + e.code)));
});
Promise.all(process.argv.slice(1).map(probe)).then((r) => { const bad = r.filter(Boolean); console.log(bad.join('; ')); process.exit(bad.length ? 1 : 0); });
`;

async function waitReachable(net: Net): Promise<void> {
  const hosts = Object.values(net.hosts);
  const from = hosts[0]!;
  const r = await from.run(process.execPath, ['-e', PROBE, ...hosts.map((h) => h.addr)], { timeoutMs: 8_000 });
  if (r.code !== 0) throw new Error(`netns: not every host is reachable from ${from.name}: ${r.stdout}${r.stderr}`);
  if (net.testAddr !== undefined) {
    const t = await runChild(process.execPath, ['-e', PROBE, from.addr], { timeoutMs: 8_000 });
    if (t.code !== 0) throw new Error(`netns: ${from.name} is not reachable from the test: ${t.stdout}${t.stderr}`);
  }
}

/** makeNet, removed at the test's teardown (also when it fails). */
export async function withNet(t: ExecutionContext, names: string[], opts: NetOptions = {}): Promise<Net> {
  const net = await makeNet(names, opts);
  t.teardown(() => net.cleanup());
  return net;
}
