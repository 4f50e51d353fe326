// Verdicts shared by content digest (issue 15 part 1): two hosts, each a blessd in its own network namespace
// guarding its own ext4 image, one redis-server on a third namespace. Content judged on host A is answered on host
// B from the store, with zero scans on B, and B still writes its own local tag; a deny shared by A is a deny on B.
import test from 'ava';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from './helpers/actor-files.js';
import { runChild } from './helpers/child.js';
import { BLESSCTL } from './helpers/daemon-process.js';
import { fleetCount, judgedOnFirst, TWO_POOL_SCANNERS, withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const CLEAN = Buffer.from('an ordinary file, the same bytes on every host of the fleet\n'.repeat(40));

async function cat(path: string) {
  return runChild('cat', [path], { timeoutMs: 15_000 });
}

async function scans(h: FleetHost): Promise<number> {
  return (await h.stats()).scans['yara'] ?? 0;
}

rootTest('content scanned on host A is answered on host B from the store, with zero scans on B; a deny counts', async (t) => {
  const f = await withFleet(t, ['a', 'b']);
  const { a, b } = f.hosts as Record<string, FleetHost>;
  // Host A: scanned here, and published.
  const onA = await judgedOnFirst([a!, b!], { 'clean.txt': CLEAN, 'eicar.com': EICAR });
  t.is(onA['clean.txt']!.stdout, CLEAN.toString());
  t.regex(onA['eicar.com']!.stderr, /Operation not permitted/);
  t.is(await scans(a!), 2);
  const keys = (await f.cli(['--scan', '--pattern', 'blessd:v1:yara:*'])).trim().split('\n').sort();
  const digests = [CLEAN, EICAR].map((c) => createHash('sha256').update(c).digest('hex'));
  t.is(keys.length, 2);
  for (const d of digests) t.true(keys.some((k) => k.endsWith(`:${d}`)), `a key for ${d}`);
  const ttl = Number((await f.cli(['ttl', keys[0]!])).trim());
  t.true(ttl > 0, `keys expire (ttl ${ttl})`);

  // Host B: the same content in its own files, answered from the store.
  t.is((await cat(join(b!.dir, 'clean.txt'))).stdout, CLEAN.toString());
  t.regex((await cat(join(b!.dir, 'eicar.com'))).stderr, /Operation not permitted/, "A's deny holds on B");
  t.is(await scans(b!), 0, 'B scanned nothing');
  t.is(await fleetCount(b!, 'hits'), 2);
  t.is(await fleetCount(b!, 'published'), 0, 'a taken answer is not published again');
  // B wrote its own tag (a denied file refuses even blessctl's open: the clean one shows it).
  const listed = await runChild(process.execPath, [BLESSCTL, 'tags', join(b!.dir, 'clean.txt'), '--json', '--config', b!.configFile]);
  const tags = JSON.parse(listed.stdout);
  const sig = (tags.tags ?? tags[0]?.tags ?? []).find((x: { scanner: string }) => x.scanner === 'yara');
  t.is(sig?.judgement, 'valid', listed.stdout);
  t.is(sig?.value?.answer ?? sig?.answer, 'ok', listed.stdout);
});

rootTest('files present when the daemons start are judged in the worker batch path, and shared the same way', async (t) => {
  const f = await withFleet(t, ['a', 'b'], { noStart: true });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  for (const h of [a!, b!]) {
    for (let i = 0; i < 5; i++) await writeFile(join(h.dir, `f${i}`), `file ${i}, present at start\n`);
    await writeFile(join(h.dir, 'eicar.com'), EICAR);
  }
  await a!.start();
  for (let i = 0; i < 5; i++) t.is((await cat(join(a!.dir, `f${i}`))).code, 0);
  t.regex((await cat(join(a!.dir, 'eicar.com'))).stderr, /Operation not permitted/);
  t.is(await scans(a!), 6);
  await waitFor('A published six verdicts', async () => (await fleetCount(a!, 'published')) === 6, 10_000, 50);
  await b!.start();
  for (let i = 0; i < 5; i++) t.is((await cat(join(b!.dir, `f${i}`))).code, 0);
  t.regex((await cat(join(b!.dir, 'eicar.com'))).stderr, /Operation not permitted/);
  t.is(await scans(b!), 0, 'B scanned nothing');
  t.is(await fleetCount(b!, 'hits'), 6);
});

rootTest('a stack of two pool scanners publishes both answers, and the other host takes both without scanning', async (t) => {
  // Both scanners take their leases (tag writes, which move ctime) before the file's digest; the second to finish
  // publishes although the first one's result tag moved ctime after the digest.
  const two = TWO_POOL_SCANNERS;
  const f = await withFleet(t, ['a', 'b'], { stacks: { a: two, b: two } });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  const files = { 'one.txt': CLEAN, 'two.txt': Buffer.from('another ordinary file\n'.repeat(30)) };
  for (const h of [a!, b!]) for (const [name, content] of Object.entries(files)) await writeFile(join(h.dir, name), content);
  for (const name of Object.keys(files)) t.is((await cat(join(a!.dir, name))).code, 0);
  await waitFor('A published both scanners\' answers for both files', async () => (await fleetCount(a!, 'published')) === 4, 10_000, 50).catch(async (e) => {
    throw new Error(`${(e as Error).message}: ${JSON.stringify((await a!.stats()).fleet)}`);
  });
  for (const [name, content] of Object.entries(files)) t.is((await cat(join(b!.dir, name))).stdout, content.toString());
  const st = await b!.stats();
  t.is((st.scans['yara'] ?? 0) + (st.scans['yara2'] ?? 0), 0, 'B scanned nothing');
  t.is(await fleetCount(b!, 'hits'), 4);
});
