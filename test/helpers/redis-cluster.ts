// A real Redis Cluster for the fleet tests: one cluster-enabled redis-server per given network namespace (each its
// own "machine", netns.ts), joined with `redis-cli --cluster create … --cluster-replicas 0` (the masters split the
// 16384 slots), ready once every node says cluster_state:ok. The nodes announce their own private addresses, which
// every namespace and the test reach, so clients need no NAT map. A short cluster-node-timeout lets a test see the
// cluster mark a killed node failed (and refuse every slot: CLUSTERDOWN) within seconds. The processes die with
// the network's cleanup; their node files live in `dir`, which the caller removes. With `tls` (tls-pki.ts) the nodes
// speak TLS only (no plain-text port), on the cluster bus too, and the URL is rediss+cluster://.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { runChild } from './child.js';
import type { NetHost } from './netns.js';
import { startRedisServer } from './redis-server.js';
import { redisCliTlsArgs, redisTlsArgs, type Pki } from './tls-pki.js';
import { waitFor, within } from './wait.js';

export const CLUSTER_PORT = 7000;
export const CLUSTER_NODE_TIMEOUT_MS = 1000;

export interface ClusterNode {
  name: string;
  addr: string;
  port: number;
  proc(): ChildProcess;
  alive(): boolean;
  /** SIGKILL it; resolves once it is gone. */
  kill(): Promise<void>;
  /** Start it again (it rejoins from its node file, with its slots); resolves once it accepts connections. */
  restart(): Promise<void>;
  /** `redis-cli -h ADDR -p PORT ARGS` against this node only (no redirections), bounded. */
  cli(args: string[]): Promise<string>;
}

export interface RedisCluster {
  nodes: ClusterNode[];
  /** The fleet.store URL naming every node. */
  url: string;
  /** The keys matching `pattern` that each live node holds (`--scan` sees one node's keys only). */
  keysByNode(pattern: string): Promise<Map<ClusterNode, string[]>>;
  /** The slot of `key` (CLUSTER KEYSLOT, asked of a live node). */
  slotOf(key: string): Promise<number>;
  /** Resolves once every live node reports `cluster_state:STATE`; rejects after `timeoutMs`. */
  waitState(state: 'ok' | 'fail', timeoutMs?: number): Promise<void>;
}

async function cliAt(addr: string, port: number, args: string[], pki?: Pki): Promise<string> {
  const r = await runChild('redis-cli', ['-h', addr, '-p', String(port), ...(pki ? redisCliTlsArgs(pki) : []), ...args], { timeoutMs: 5_000 });
  if (r.code !== 0) throw new Error(`redis-cli -h ${addr} -p ${port} ${args.join(' ')}: ${r.code ?? r.signal}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export async function startRedisCluster(hosts: NetHost[], dir: string, opts: { tls?: Pki } = {}): Promise<RedisCluster> {
  const pki = opts.tls;
  if (hosts.length < 3) throw new Error('a Redis Cluster needs at least 3 masters');
  const nodes: ClusterNode[] = [];
  for (const host of hosts) {
    const start = () =>
      startRedisServer(host, CLUSTER_PORT, dir, [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dir, `nodes-${host.name}.conf`),
        '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS),
        ...(pki ? redisTlsArgs(pki, host.addr, CLUSTER_PORT) : []),
      ]);
    let child = await start();
    const alive = () => child.exitCode === null && child.signalCode === null;
    nodes.push({
      name: host.name,
      addr: host.addr,
      port: CLUSTER_PORT,
      proc: () => child,
      alive,
      async kill() {
        if (!alive()) return;
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await within(`cluster node ${host.name} gone`, gone, 5_000);
      },
      async restart() {
        if (alive()) throw new Error(`cluster node ${host.name} still runs`);
        child = await start();
      },
      cli: (args) => cliAt(host.addr, CLUSTER_PORT, args, pki),
    });
  }
  // From the first node's namespace; the tool assigns the slots and waits for the nodes to agree.
  const create = await hosts[0]!.run('redis-cli', [...(pki ? redisCliTlsArgs(pki) : []), '--cluster', 'create', ...nodes.map((n) => `${n.addr}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { timeoutMs: 30_000 });
  if (create.code !== 0) throw new Error(`redis-cli --cluster create: ${create.code ?? create.signal}: ${create.stdout}${create.stderr}`);
  const live = () => nodes.filter((n) => n.alive());
  const cluster: RedisCluster = {
    nodes,
    url: `${pki ? 'rediss' : 'redis'}+cluster://${nodes.map((n) => `${n.addr}:${n.port}`).join(',')}`,
    async keysByNode(pattern) {
      const found = new Map<ClusterNode, string[]>();
      for (const n of live()) found.set(n, (await n.cli(['--scan', '--pattern', pattern])).split('\n').filter(Boolean));
      return found;
    },
    async slotOf(key) {
      const n = live()[0];
      if (!n) throw new Error('no live cluster node');
      return Number((await n.cli(['cluster', 'keyslot', key])).trim());
    },
    async waitState(state, timeoutMs = 15_000) {
      const want = `cluster_state:${state}`;
      await waitFor(`every live cluster node at ${want}`, async () => {
        for (const n of live()) if (!(await n.cli(['cluster', 'info'])).includes(want)) return false;
        return true;
      }, timeoutMs, 100);
    },
  };
  await cluster.waitState('ok');
  return cluster;
}
