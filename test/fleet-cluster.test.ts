// The fleet store as a Redis Cluster (issue 15, `fleet.store: redis+cluster://…`): three cluster-enabled
// redis-servers, each in a network namespace of its own, two blessd hosts in theirs, each guarding its own ext4
// image. Verdicts judged on A are answered on B with zero scans on B — with two pool scanners, so one file's lookup
// asks for keys in different slots (one MGET would be refused: CROSSSLOT). Then one node is killed: both hosts keep
// gating with local scans, every access bounded, first while the cluster still counts the node in (its keys fail,
// the others answer), then once the cluster refuses every slot (CLUSTERDOWN), logged as a loss, not once per file;
// and the node back: both hosts take answers from the cluster again.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from './helpers/actor-files.js';
import { runChild } from './helpers/child.js';
import { fleetCount, sharedFromFirst, TWO_POOL_SCANNERS, withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const CLEAN = Buffer.from('an ordinary file, the same bytes on every host of a fleet that stores in a cluster\n'.repeat(40));

const read = (p: string) => runChild('cat', [p], { timeoutMs: 15_000 });
const scans = async (h: FleetHost, scanner = 'yara') => (await h.stats()).scans[scanner] ?? 0;
const fleet = fleetCount;
const lines = (h: FleetHost, re: RegExp) => h.daemon().log().split('\n').filter((l) => re.test(l)).length;

rootTest('content scanned on host A is answered on host B through a Redis Cluster, with zero scans on B', async (t) => {
  // B has a second pool scanner: each lookup of B asks for two keys (yara's and yara2's) in two slots.
  const f = await withFleet(t, ['a', 'b'], { cluster: 3, stacks: { b: TWO_POOL_SCANNERS } });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  const cluster = f.cluster!;
  // B's lookups span two slots: all answered is no CROSSSLOT.
  const keys = async () => [...(await cluster.keysByNode('blessd:v1:yara:*')).values()].flat();
  await sharedFromFirst(t, a!, b!, CLEAN, { keys, via: 'the cluster' });
  t.is(await fleet(b!, 'misses'), 2, 'yara2 has no answer in the store: B scanned with it');
  t.is(await scans(b!, 'yara2'), 2);
});

rootTest('one cluster node killed: both hosts keep gating with local scans, nothing hangs, the loss is logged; back, it answers', async (t) => {
  // A long fleet.timeout: a lookup that fails at once is told apart from one that waited it out.
  const f = await withFleet(t, ['a', 'b'], { cluster: 3, timeout: '3s' });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  const cluster = f.cluster!;
  const first = Buffer.from('judged while the whole cluster is up\n');
  await writeFile(join(a!.dir, 'first'), first);
  t.is((await read(join(a!.dir, 'first'))).code, 0);
  await waitFor('A published', async () => (await fleet(a!, 'published')) === 1, 10_000, 50);
  // Kill the node that holds first's key: the same content read again must ask that node.
  const holder = [...(await cluster.keysByNode('blessd:v1:*'))].find(([, keys]) => keys.length === 1)?.[0];
  if (!holder) return t.fail('no node holds the published key');
  await holder.kill();

  let round = 0;
  const gateEverything = async (phase: string) => {
    round++;
    for (const h of [a!, b!]) {
      const before = { scans: await scans(h), unavailable: await fleet(h, 'unavailable') };
      // The same content as `first`, in a new file: its key is on the dead node.
      const again = join(h.dir, `again-${round}`);
      await writeFile(again, first);
      const r = await read(again);
      t.is(r.code, 0, `${phase}: ${h.name} again-${round}: ${r.stderr}`);
      t.true(r.ms < 2_000, `${phase}: ${h.name} again-${round} took ${Math.round(r.ms)} ms: its lookup failed at once, not at fleet.timeout`);
      for (let i = 0; i < 3; i++) {
        const clean = join(h.dir, `clean-${round}-${i}`);
        const evil = join(h.dir, `evil-${round}-${i}`);
        await writeFile(clean, `clean file ${round} ${i} on ${h.name}\n`);
        await writeFile(evil, Buffer.concat([EICAR, Buffer.from(`\n${round} ${i} ${h.name}\n`)]));
        const c = await read(clean);
        t.is(c.code, 0, `${phase}: ${h.name} clean-${round}-${i}: ${c.stderr}`);
        t.true(c.ms < 3_000, `${phase}: ${h.name} clean-${round}-${i} took ${Math.round(c.ms)} ms`);
        const e = await read(evil);
        t.regex(e.stderr, /Operation not permitted/, `${phase}: ${h.name} evil-${round}-${i} denied by the local scan`);
        t.true(e.ms < 3_000, `${phase}: ${h.name} evil-${round}-${i} took ${Math.round(e.ms)} ms`);
      }
      t.is(await scans(h), before.scans + 7, `${phase}: ${h.name} scanned every file locally`);
      t.true((await fleet(h, 'unavailable')) > before.unavailable, `${phase}: ${h.name} counted the dead node's lookup unavailable`);
    }
  };
  // The cluster has not marked the node failed yet: its slots fail, the others answer.
  await gateEverything('node dead, cluster still ok');
  // Past cluster-node-timeout the live nodes mark it failed and refuse every slot (CLUSTERDOWN): every lookup fails.
  await cluster.waitState('fail');
  const unavailable = { a: await fleet(a!, 'unavailable'), b: await fleet(b!, 'unavailable') };
  await gateEverything('cluster down');
  t.true((await fleet(a!, 'unavailable')) >= unavailable.a + 7, 'every lookup of A failed once the cluster is down');
  t.true((await fleet(b!, 'unavailable')) >= unavailable.b + 7, 'every lookup of B failed once the cluster is down');
  for (const h of [a!, b!]) {
    await waitFor(`${h.name} logged the store's loss`, () => lines(h, /fleet store unavailable/) > 0, 5_000);
    t.true(lines(h, /fleet store unavailable/) <= 2, `${h.name} logged the loss once per change, not once per file`);
  }

  // The node back (from its node file, with its slots): lookups are answered again, reconnected in the background.
  await holder.restart();
  await cluster.waitState('ok');
  for (const h of [a!, b!]) {
    const hits = await fleet(h, 'hits');
    let n = 0;
    await waitFor(`${h.name} takes first's answer from the cluster again`, async () => {
      const p = join(h.dir, `after-${n++}`);
      await writeFile(p, first);
      t.is((await read(p)).code, 0);
      return (await fleet(h, 'hits')) > hits;
    }, 15_000, 100);
    await waitFor(`${h.name} logged the recovery`, () => lines(h, /fleet store answering again/) > 0, 5_000);
  }
  for (const h of [a!, b!]) {
    await h.daemon().kill('SIGTERM');
    t.is((await h.daemon().exited).code, 0, `${h.name} stopped cleanly`);
  }
});
