// A generation names what an answer is about (the scanner's rules and the host's bump counter): a bump makes the
// old keys miss, and what a host publishes under its new generation is not taken by a host still at the old one.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const X = Buffer.from('content judged before the bump\n'.repeat(20));
const Y = Buffer.from('content judged after the bump\n'.repeat(20));

const read = (p: string) => runChild('cat', [p], { timeoutMs: 15_000 });
const scans = async (h: FleetHost) => (await h.stats()).scans['yara'] ?? 0;
const fleet = async (h: FleetHost, k: string) => (await h.stats()).fleet?.[k] ?? 0;

rootTest('a generation bump on A: old keys miss on A, and what A publishes after it makes B (at the old generation) scan', async (t) => {
  const f = await withFleet(t, ['a', 'b']);
  const { a, b } = f.hosts as Record<string, FleetHost>;
  await writeFile(join(a!.dir, 'x'), X);
  t.is((await read(join(a!.dir, 'x'))).stdout, X.toString());
  await waitFor('A published x', async () => (await fleet(a!, 'published')) === 1, 10_000, 50);

  const bumped = await a!.ctl(['generation', 'bump', 'yara', '--json']);
  t.is(bumped.code, 0, bumped.stderr);
  t.is(JSON.parse(bumped.stdout).by, 'daemon');

  // Old keys miss: the same content in a new file on A is scanned again.
  await writeFile(join(a!.dir, 'x-again'), X);
  const before = await scans(a!);
  t.is((await read(join(a!.dir, 'x-again'))).stdout, X.toString());
  t.is(await scans(a!), before + 1, 'A scanned content it had published under its old generation');
  // New content, judged by A under its new generation.
  await writeFile(join(a!.dir, 'y'), Y);
  t.is((await read(join(a!.dir, 'y'))).stdout, Y.toString());
  await waitFor('A published x-again and y under its new generation', async () => (await fleet(a!, 'published')) === 3, 10_000, 50);
  const keys = (await f.cli(['--scan', '--pattern', 'blessd:v1:yara:*'])).trim().split('\n');
  t.is(keys.length, 3, keys.join('\n'));
  // The generation is all between the scanner and the digest (yara's own generation may hold colons).
  t.is(new Set(keys.map((k) => k.slice(0, k.lastIndexOf(':')))).size, 2, 'two generations in the store');

  // B, still at the old generation: y is scanned (A's answer is under another generation), x is taken from the store.
  await writeFile(join(b!.dir, 'y'), Y);
  await writeFile(join(b!.dir, 'x'), X);
  t.is((await read(join(b!.dir, 'y'))).stdout, Y.toString());
  t.is(await scans(b!), 1, 'B scanned y');
  t.is((await read(join(b!.dir, 'x'))).stdout, X.toString());
  t.is(await scans(b!), 1, 'B took x from the store (same generation as when A published it)');
  const hits = await fleet(b!, 'hits');
  t.is(hits, 1, `B's hits: one, for x (y was a miss, then scanned)`);
});
