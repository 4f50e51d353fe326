// A Redis Cluster whose startup nodes are down when the daemons start (issue 15): the store is an accelerator,
// never a dependency. (1) The URL lists two addresses that refuse before the one live cluster node: the client
// must still find the cluster through that node, and A's verdicts are answered on B with zero scans there.
// (2) The first URL entry is a real cluster node, killed before the daemons start (the cluster refuses every slot):
// both hosts start and gate with local scans, every access bounded, the loss logged once, not once per file; the
// node back, B takes A's answers from the cluster.
import test, { type ExecutionContext } from 'ava';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from './helpers/actor-files.js';
import { runChild } from './helpers/child.js';
import { fleetCount as fleet, judgedOnFirst, readFreshLocally, withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { CLUSTER_PORT } from './helpers/redis-cluster.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const CLEAN = Buffer.from('an ordinary file, judged while the startup node of the cluster is down\n'.repeat(40));
const read = (p: string) => runChild('cat', [p], { timeoutMs: 15_000 });
const scans = async (h: FleetHost) => (await h.stats()).scans['yara'] ?? 0;
const lines = (h: FleetHost, re: RegExp) => h.daemon().log().split('\n').filter((l) => re.test(l)).length;

async function setStore(h: FleetHost, url: string): Promise<void> {
  const conf = await readFile(h.configFile, 'utf8');
  await writeFile(h.configFile, conf.replace(/^  store: .*$/m, `  store: ${url}`));
}

/**
 * Once the cluster is back: A judges one new content until it is published (the client reconnects in the
 * background), then B reads the same content until it takes A's answer (until B has reconnected too, its reads are
 * scanned locally, still gated); every read is served. Then both stop cleanly.
 */
async function sharedOnceBack(t: ExecutionContext, a: FleetHost, b: FleetHost, content: string, boundMs: number): Promise<void> {
  const shared = Buffer.from(content);
  for (const [h, counter, what] of [[a, 'published', 'A publishes to the cluster'], [b, 'hits', "B takes A's answer from the cluster"]] as const) {
    let n = 0;
    await waitFor(what, async () => {
      const p = join(h.dir, `after-${n++}`);
      await writeFile(p, shared);
      t.is((await read(p)).code, 0);
      return (await fleet(h, counter)) > 0;
    }, boundMs, 200);
  }
  for (const h of [a, b]) {
    await h.daemon().kill('SIGTERM');
    t.is((await h.daemon().exited).code, 0, `${h.name} stopped cleanly`);
  }
}

rootTest('startup nodes that refuse, listed before a live one: the client finds the cluster through it, answers are shared', async (t) => {
  const f = await withFleet(t, ['a', 'b'], { cluster: 3, noStart: true });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  // The hosts' own addresses: reachable, nothing listens on the cluster port there, so each connect is refused.
  const refusing = [f.net.hosts['a']!.addr, f.net.hosts['b']!.addr].map((addr) => `${addr}:${CLUSTER_PORT}`);
  const live = f.cluster!.nodes[1]!;
  const url = `redis+cluster://${[...refusing, `${live.addr}:${live.port}`].join(',')}`;
  for (const h of [a!, b!]) {
    await setStore(h, url);
    await h.start();
  }
  const onA = await judgedOnFirst([a!, b!], { 'clean.txt': CLEAN, 'eicar.com': EICAR });
  t.is(onA['clean.txt']!.stdout, CLEAN.toString());
  t.regex(onA['eicar.com']!.stderr, /Operation not permitted/);
  t.is((await read(join(b!.dir, 'clean.txt'))).stdout, CLEAN.toString());
  t.regex((await read(join(b!.dir, 'eicar.com'))).stderr, /Operation not permitted/, "A's deny holds on B");
  t.is(await scans(b!), 0, 'B scanned nothing: both answers came from the cluster, found through its third listed node');
  t.is(await fleet(b!, 'hits'), 2);
  t.is(await fleet(b!, 'unavailable'), 0, `B's lookups all answered: ${b!.daemon().log()}`);
  for (const h of [a!, b!]) {
    await h.daemon().kill('SIGTERM');
    t.is((await h.daemon().exited).code, 0, `${h.name} stopped cleanly`);
  }
});

rootTest('the first listed cluster node down at start: both hosts gate with local scans, bounded, logged once; back, answers are shared', async (t) => {
  const f = await withFleet(t, ['a', 'b'], { cluster: 3, noStart: true });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  const cluster = f.cluster!;
  const first = cluster.nodes[0]!;
  t.true(f.storeUrl.startsWith(`redis+cluster://${first.addr}:${first.port},`), `the killed node is the first entry: ${f.storeUrl}`);
  await first.kill();
  await cluster.waitState('fail');
  // Bounded by the harness: a daemon that does not come up fails the test at its bound.
  for (const h of [a!, b!]) await h.start();

  for (const h of [a!, b!]) {
    await readFreshLocally(t, h, 4, (i) => `${i} on ${h.name}`);
    t.true((await fleet(h, 'unavailable')) > 0, `${h.name} counted its lookups unavailable`);
    t.is(await fleet(h, 'hits'), 0);
  }
  for (const h of [a!, b!]) {
    await waitFor(`${h.name} logged the store's loss`, () => lines(h, /fleet store unavailable/) > 0, 5_000);
    t.true(lines(h, /fleet store unavailable/) <= 2, `${h.name} logged the loss once per change, not once per file: ${h.daemon().log()}`);
  }

  await first.restart();
  await cluster.waitState('ok');
  // A judges a new content until it is published (the client reconnects in the background), then B takes it.
  await sharedOnceBack(t, a!, b!, 'judged on A once the first node is back\n', 15_000);
});

rootTest('every cluster node down at start: both hosts start and gate with local scans, bounded; the cluster up, answers are shared', async (t) => {
  const f = await withFleet(t, ['a', 'b'], { cluster: 3, noStart: true });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  const cluster = f.cluster!;
  for (const n of cluster.nodes) await n.kill();
  for (const h of [a!, b!]) await h.start();
  for (const h of [a!, b!]) {
    await readFreshLocally(t, h, 3, (i) => `${i} on ${h.name}, no node up`);
    t.true((await fleet(h, 'unavailable')) > 0, `${h.name} counted its lookups unavailable`);
  }
  for (const n of cluster.nodes) await n.restart();
  await cluster.waitState('ok');
  await sharedOnceBack(t, a!, b!, 'judged on A once every node is back\n', 20_000);
});
