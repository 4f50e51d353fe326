// A value in the store that does not verify is refused and the file scanned locally: a forged "allow" over a deny
// (no fleet key), and a genuine value copied to another content's key (the MAC binds the key). The malicious
// content stays denied; the refusals are counted and logged.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { storeClient } from '../src/fleet/store-client.js';
import { decodeValue, encodeValue, storeKey } from '../src/fleet/value.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from './helpers/actor-files.js';
import { runChild } from './helpers/child.js';
import { withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const CLEAN = Buffer.from('clean content whose genuine verdict an attacker copies\n');
const EVIL1 = Buffer.concat([EICAR, Buffer.from('\nvariant one\n')]);
const EVIL2 = Buffer.concat([EICAR, Buffer.from('\nvariant two\n')]);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const read = (p: string) => runChild('cat', [p], { timeoutMs: 15_000 });
const scans = async (h: FleetHost) => (await h.stats()).scans['yara'] ?? 0;
const fleet = async (h: FleetHost, k: string) => (await h.stats()).fleet?.[k] ?? 0;

rootTest('a forged or copied value in the store is refused, and the malicious content is still denied', async (t) => {
  const f = await withFleet(t, ['a', 'b']);
  const { a, b } = f.hosts as Record<string, FleetHost>;
  for (const [name, content] of [['clean', CLEAN], ['evil1', EVIL1], ['evil2', EVIL2]] as const) {
    await writeFile(join(a!.dir, name), content);
    await writeFile(join(b!.dir, name), content);
  }
  t.is((await read(join(a!.dir, 'clean'))).code, 0);
  t.regex((await read(join(a!.dir, 'evil1'))).stderr, /Operation not permitted/);
  t.regex((await read(join(a!.dir, 'evil2'))).stderr, /Operation not permitted/);
  await waitFor('A published three verdicts', async () => (await fleet(a!, 'published')) === 3, 10_000, 50);
  const keys = (await f.cli(['--scan', '--pattern', 'blessd:v1:yara:*'])).trim().split('\n');
  const keyOf = (b: Buffer) => keys.find((k) => k.endsWith(`:${sha(b)}`))!;
  const genuineClean = (await f.cli(['--raw', 'get', keyOf(CLEAN)])).trim();
  t.regex(genuineClean, /^1 ok \d+ a - \S+$/);

  // An attacker with write access to the store but not the key: an "allow" with a made-up MAC over evil1's deny...
  const forged = `1 allow ${Date.now()} a - ${Buffer.alloc(32, 7).toString('base64url')}`;
  t.is((await f.cli(['set', keyOf(EVIL1), forged])).trim(), 'OK');
  // ...and the genuine "ok" of the clean content, copied over evil2's deny.
  t.is((await f.cli(['set', keyOf(EVIL2), genuineClean])).trim(), 'OK');

  t.regex((await read(join(b!.dir, 'evil1'))).stderr, /Operation not permitted/, 'forged allow refused: scanned and denied');
  t.regex((await read(join(b!.dir, 'evil2'))).stderr, /Operation not permitted/, 'copied value refused: scanned and denied');
  t.is(await scans(b!), 2, 'B scanned both locally');
  t.is(await fleet(b!, 'refused'), 2);
  t.is(await fleet(b!, 'hits'), 0);
  t.is((await read(join(b!.dir, 'clean'))).code, 0);
  t.is(await fleet(b!, 'hits'), 1, 'the genuine value still serves its own content');
  await waitFor('the refusal logged', () => /fleet store: refused values/.test(b!.daemon().log()), 5_000);
  t.regex(b!.daemon().log(), /bad MAC/);
});

rootTest('a deny overwrites an allow in the store, and an allow never overwrites a deny (the store client itself)', async (t) => {
  const f = await withFleet(t, []);
  const client = storeClient(f.storeUrl, 1_000);
  t.teardown(() => client.close());
  const fleetKey = randomBytes(32);
  const key = storeKey('yara', 'g#0', sha(Buffer.from('raced content')));
  const answerAt = async () => {
    const r = await client.get([key]);
    if (r.failed) throw new Error(r.why);
    const d = decodeValue(fleetKey, key, r.values[0]!);
    return d.ok ? d.verdict.answer.answer : d.why;
  };
  // Two hosts missed at once and both scanned: the first "ok" is written once, later ones are not...
  t.is(await client.publish(key, encodeValue(fleetKey, key, { answer: 'ok' }, 'a'), 60, false), true);
  t.is(await client.publish(key, encodeValue(fleetKey, key, { answer: 'allow' }, 'b'), 60, false), false);
  t.is(await answerAt(), 'ok');
  // ...a deny from any host replaces it...
  t.is(await client.publish(key, encodeValue(fleetKey, key, { answer: 'deny', reason: 'found' }, 'c'), 60, true), true);
  t.is(await answerAt(), 'deny');
  // ...and no allow or ok replaces the deny.
  t.is(await client.publish(key, encodeValue(fleetKey, key, { answer: 'allow' }, 'a'), 60, false), false);
  t.is(await answerAt(), 'deny');
  const ttl = Number((await f.cli(['ttl', key])).trim());
  t.true(ttl > 0 && ttl <= 60, `the deny expires too (ttl ${ttl})`);
});
