// The fleet store as a Redis Cluster over TLS (issue 15, `fleet.store: rediss+cluster://…` with fleet.tls): three
// cluster-enabled redis-servers with TLS only (`--port 0 --tls-port`, tls-cluster and tls-replication on, client
// certificates asked for), each in a network namespace of its own with a certificate whose only name is its own IP
// address (tls-pki.ts, made here with openssl), two blessd hosts in theirs, each guarding its own ext4 image.
// (1) A's verdicts are answered on B with zero scans, through the TLS cluster. (2) The hosts trust another CA: every
// handshake fails; both hosts start, gate with local scans, every access bounded, the loss logged once with the
// certificate's reason. (3) fleet.tls.ca names a missing file: `blessd check` and `blessd run` say so, naming the
// key and the path, and run does not start (nothing is guarded).
import test from 'ava';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { BLESSD } from './helpers/daemon-process.js';
import { fleetCount as fleet, readFreshLocally, sharedFromFirst, TWO_POOL_SCANNERS, withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const CLEAN = Buffer.from('an ordinary file, the same bytes on every host of a fleet that stores in a TLS cluster\n'.repeat(40));
const scans = async (h: FleetHost, scanner = 'yara') => (await h.stats()).scans[scanner] ?? 0;
const lines = (h: FleetHost, re: RegExp) => h.daemon().log().split('\n').filter((l) => re.test(l));

rootTest('content scanned on host A is answered on host B through a TLS Redis Cluster, with zero scans on B', async (t) => {
  // B has a second pool scanner: its lookups ask for keys in two slots, so more than one node is asked over TLS.
  const f = await withFleet(t, ['a', 'b'], { cluster: 3, tls: true, stacks: { b: TWO_POOL_SCANNERS } });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  const cluster = f.cluster!;
  t.true(f.storeUrl.startsWith('rediss+cluster://'), f.storeUrl);
  // The nodes speak TLS only: a plain-text client gets nothing from them.
  const plain = await runChild('redis-cli', ['-h', cluster.nodes[0]!.addr, '-p', String(cluster.nodes[0]!.port), 'ping'], { timeoutMs: 5_000 });
  t.notRegex(plain.stdout, /PONG/, 'no plain-text answer from a TLS node');

  const keys = async () => [...(await cluster.keysByNode('blessd:v1:yara:*')).values()].flat();
  await sharedFromFirst(t, a!, b!, CLEAN, { keys, via: 'the TLS cluster' });
  t.is(await scans(b!, 'yara2'), 2, 'yara2 has no answer in the store: B scanned with it');
  t.regex(a!.daemon().log(), /"store":"rediss\+cluster:\/\//, 'the log names the TLS cluster');
  for (const h of [a!, b!]) {
    await h.daemon().kill('SIGTERM');
    t.is((await h.daemon().exited).code, 0, `${h.name} stopped cleanly`);
  }
});

rootTest('hosts that trust another CA: every handshake fails, both hosts gate with local scans, bounded, logged once', async (t) => {
  const f = await withFleet(t, ['a', 'b'], {
    cluster: 3,
    tls: (pki) => `  tls: { ca: ${pki.rogueCa}, cert: ${pki.clientCert}, key: ${pki.clientKey} }\n`,
  });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  for (const h of [a!, b!]) {
    // The same content on both hosts: were the store reached, B would take A's answers.
    await readFreshLocally(t, h, 4, (i) => `${i}`);
    t.is(await fleet(h, 'hits'), 0);
    t.is(await fleet(h, 'published'), 0, `${h.name} published nothing to a store it does not trust`);
    t.true((await fleet(h, 'unavailable')) > 0, `${h.name} counted its lookups unavailable`);
  }
  // Nothing reached the cluster (checked with the right CA).
  t.deepEqual([...(await f.cluster!.keysByNode('blessd:*')).values()].flat(), []);
  for (const h of [a!, b!]) {
    await waitFor(`${h.name} logged the store's loss`, () => lines(h, /fleet store unavailable/).length > 0, 5_000);
    const logged = lines(h, /fleet store unavailable/);
    t.is(logged.length, 1, `${h.name} logged the loss once, not once per file: ${h.daemon().log()}`);
    t.regex(logged[0]!, /certificate|issuer/i, `the log says why: the certificate: ${logged[0]}`);
  }
  for (const h of [a!, b!]) {
    await h.daemon().kill('SIGTERM');
    t.is((await h.daemon().exited).code, 0, `${h.name} stopped cleanly (no connection attempt held it)`);
  }
});

rootTest('fleet.tls.ca names a missing file: check and run say so, naming the key and the path; run does not start', async (t) => {
  // No cluster needed: nothing connects. The key is in the fleet section (`extra` follows fleet.host).
  const missing = join(tmpdir(), 'blessd-no-such-dir', 'ca.pem');
  const f = await withFleet(t, ['a'], { noStart: true, storeUrl: (addr) => `rediss+cluster://${addr}:7000`, extra: `  tls: { ca: ${missing} }\n` });
  const a = f.hosts['a']!;
  const named = new RegExp(`fleet\\.tls\\.ca ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: ENOENT`);
  const check = await runChild(process.execPath, [BLESSD, 'check', '--config', a.configFile], { timeoutMs: 60_000 });
  t.is(check.code, 1, `check fails: ${check.stdout}${check.stderr}`);
  t.regex(check.stderr, named, check.stderr);
  t.regex(check.stderr, /1 problem: blessd run would not start/);
  const run = await runChild(process.execPath, [BLESSD, 'run', '--config', a.configFile], { timeoutMs: 60_000 });
  t.is(run.code, 1, `run fails: ${run.stdout}${run.stderr}`);
  t.regex(run.stderr, new RegExp(`blessd run: cannot start: .*${named.source}`), run.stderr);
  t.regex(run.stderr, /"code":"FLEET_TLS"/, 'the fatal log line carries the stable code');
  t.notRegex(run.stdout, /ready/, 'never ready');
});
