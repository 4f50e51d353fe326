// The fleet store as one Redis over TLS (`fleet.store: rediss://…` with fleet.tls): a redis-server with TLS only
// (`--port 0 --tls-port`, client certificates asked for) in a network namespace of its own, blessd hosts in theirs,
// each guarding its own ext4 image; certificates made here with openssl (tls-pki.ts).
// (1) The store's certificate names its IP: with the CA and a client certificate, A's verdicts are answered on B
// with zero scans. (2) The store's certificate names a DNS name only: a host without `servername` fails every
// handshake (the address is not the certificate's name) — its lookups fail fast, its files are scanned locally,
// the loss is logged once with the reason; hosts with `fleet.tls.servername` share through the same store.
import test from 'ava';
import { runChild } from './helpers/child.js';
import { fleetCount as fleet, readFreshLocally, REDIS_PORT, sharedFromFirst, withFleet, type Fleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const CLEAN = Buffer.from('an ordinary file, the same bytes on every host of a fleet that stores in one Redis over TLS\n'.repeat(40));
const lines = (h: FleetHost, re: RegExp) => h.daemon().log().split('\n').filter((l) => re.test(l));

const yaraKeys = (f: Fleet) => async () => (await f.cli(['--scan', '--pattern', 'blessd:v1:yara:*'])).trim().split('\n').filter(Boolean);

rootTest('one Redis over TLS (rediss://, a CA and a client certificate): content scanned on A is answered on B with zero scans', async (t) => {
  const f = await withFleet(t, ['a', 'b'], { tls: true });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  t.is(f.storeUrl, `rediss://${f.redisAddr}:${REDIS_PORT}`);
  // TLS only: a plain-text client gets nothing from it.
  const plain = await runChild('redis-cli', ['-h', f.redisAddr, '-p', String(REDIS_PORT), 'ping'], { timeoutMs: 5_000 });
  t.notRegex(plain.stdout, /PONG/, 'no plain-text answer from the TLS store');
  await sharedFromFirst(t, a!, b!, CLEAN, { keys: yaraKeys(f), via: 'the TLS store' });
  t.regex(a!.daemon().log(), /"store":"rediss:\/\//, 'the log names the TLS store');
});

rootTest("the store's certificate names a DNS name: without servername every lookup fails fast and files are scanned locally (logged once); with it, shared", async (t) => {
  const name = 'redis.fleet.test';
  const f = await withFleet(t, ['a', 'b', 'c'], {
    storeName: name,
    // a asks for the store by its address (no servername); b and c ask for the name its certificate carries.
    tls: (pki, host) => `  tls: { ca: ${pki.ca}, cert: ${pki.clientCert}, key: ${pki.clientKey}${host === 'a' ? '' : `, servername: ${name}`} }\n`,
  });
  const { a, b, c } = f.hosts as Record<string, FleetHost>;
  // The same content as b and c judge below: a store reached would answer it.
  await readFreshLocally(t, a!, 3, (i) => `${i}`);
  t.is(await fleet(a!, 'hits'), 0);
  t.is(await fleet(a!, 'published'), 0, 'a published nothing to a store whose certificate is not for its address');
  t.true((await fleet(a!, 'unavailable')) > 0, 'a counted its lookups unavailable');
  await waitFor("a logged the store's loss", () => lines(a!, /fleet store unavailable/).length > 0, 5_000);
  const logged = lines(a!, /fleet store unavailable/);
  t.is(logged.length, 1, `logged once, not once per file: ${a!.daemon().log()}`);
  t.regex(logged[0]!, /altnames|does not match/i, `the log says why: the certificate's name: ${logged[0]}`);

  t.deepEqual((await f.cli(['--scan', '--pattern', 'blessd:*'])).trim(), '', 'nothing of a in the store');
  await sharedFromFirst(t, b!, c!, CLEAN, { keys: yaraKeys(f), via: `the TLS store, asked for as ${name}` });
});
