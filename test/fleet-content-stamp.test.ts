// Digest once with `tags.stamp: content` (issue 15, gap 2). The worker batch does not serve content stamps, so every
// cold file takes the main thread's scan path (scan-service, one pool task per scanner): there the signature pass
// returns the digest it reads anyway, the content stamp of every result tag and the served scanners' store lookup
// reuse it (src/daemon/digest-round.ts), and a cold file (no result tag) gets no verify digest. Before, a cold
// 16 MiB file was read 3.01× its size with signature alone (verify, scan, stamp) and 6.01× with signature + yara +
// the store (verify, scan, stamp, lookup digest, yara, stamp). Reads are measured: the daemon's /proc/<pid>/io rchar.
import test from 'ava';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { BLESSCTL } from './helpers/daemon-process.js';
import { daemonRchar, fleetCount, incompressible, SIGNATURE_STACK, signatureMarkerStack, withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const MiB = 1 << 20;
const SIZE = 16 * MiB;
const CONTENT = 'tags: { stamp: content }\n';

const cat = (p: string) => runChild('cat', [p], { timeoutMs: 30_000 });
const scans = async (h: FleetHost, name: string) => (await h.stats()).scans[name] ?? 0;

/** The content digest each result tag of `path` carries (blessctl tags --json, as the daemon wrote them). */
async function tagDigests(h: FleetHost, path: string): Promise<Record<string, string | null>> {
  const r = await runChild(process.execPath, [BLESSCTL, 'tags', path, '--json', '--config', h.configFile], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`blessctl tags ${path}: ${r.stderr}`);
  const out: Record<string, string | null> = {};
  for (const tag of JSON.parse(r.stdout).tags as { scanner: string; kind: string; digest?: string | null }[]) if (tag.kind === 'result') out[tag.scanner] = tag.digest ?? null;
  return out;
}

/** Reads `name` cold on `h` (after a warm-up file has loaded the actors) and returns the daemon's reads of it, in file sizes. */
async function readsOfColdFile(h: FleetHost, name: string): Promise<number> {
  const before = await daemonRchar(h);
  const r = await cat(join(h.dir, name));
  if (r.code !== 0) throw new Error(`cat ${name}: ${r.stderr}`);
  // Every tag write (and the digest it carries) happens before the answer that let cat read: nothing is left to count.
  return ((await daemonRchar(h)) - before) / SIZE;
}

rootTest('content stamp, signature alone: a cold 16 MiB file is read once (the pass is the stamp digest; no verify digest without tags)', async (t) => {
  const f = await withFleet(t, ['a'], { stack: SIGNATURE_STACK, sizeMiB: 128, extra: CONTENT });
  const a = f.hosts.a!;
  const big = incompressible(SIZE);
  await writeFile(join(a.dir, 'warm.txt'), 'loads the signature databases before the measured file\n');
  await writeFile(join(a.dir, 'big.bin'), big);
  t.is((await cat(join(a.dir, 'warm.txt'))).code, 0);
  const reads = await readsOfColdFile(a, 'big.bin');
  t.log(`signature alone, content stamp: the daemon read the 16 MiB cold file ${reads.toFixed(2)} times`);
  t.true(reads >= 0.99 && reads < 1.5, `read ${reads.toFixed(2)} times (want 1: the pass gives the stamp's digest)`);
  t.is(await scans(a, 'signature'), 2);
  t.deepEqual(await tagDigests(a, join(a.dir, 'big.bin')), { signature: createHash('sha256').update(big).digest('hex') }, "the tag carries the content's digest");
});

rootTest('content stamp, signature + yara + the store: blessd reads a cold 16 MiB file once besides yara, and a hit on B once in all', async (t) => {
  const stack = await signatureMarkerStack(t);
  const f = await withFleet(t, ['a', 'b'], { stack, sizeMiB: 128, extra: CONTENT });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  const big = incompressible(SIZE);
  const digest = createHash('sha256').update(big).digest('hex');
  for (const h of [a!, b!]) {
    // Not the same on both: B's would be a store hit, and load no yara.
    await writeFile(join(h.dir, 'warm.txt'), `loads the actors and connects the store before the measured file, on ${h.name}\n`);
    await writeFile(join(h.dir, 'big.bin'), big);
  }
  for (const h of [a!, b!]) t.is((await cat(join(h.dir, 'warm.txt'))).code, 0);
  await waitFor('A published warm.txt (yara)', async () => (await fleetCount(a!, 'published')) === 1, 15_000, 50);

  const onA = await readsOfColdFile(a!, 'big.bin');
  // yara (YARA-X) takes the file whole into memory: that read is the engine's own.
  t.log(`A (store miss): ${onA.toFixed(2)} reads of the cold file, ${(onA - 1).toFixed(2)} by blessd besides yara's own`);
  t.true(onA - 1 >= 0.99 && onA - 1 < 1.5, `blessd read the file ${(onA - 1).toFixed(2)} times besides yara's read (want 1: the pass)`);
  await waitFor('A published big.bin under the content digest', async () => (await f.cli(['--scan', '--pattern', `blessd:v1:yara:*:${digest}`])).trim() !== '', 15_000, 50);
  t.deepEqual(await tagDigests(a!, join(a!.dir, 'big.bin')), { signature: digest, yara: digest });

  const onB = await readsOfColdFile(b!, 'big.bin');
  t.log(`B (store hit): ${onB.toFixed(2)} reads of the cold file`);
  t.true(onB >= 0.99 && onB < 1.5, `B read the file ${onB.toFixed(2)} times (want 1: the pass, whose digest found A's yara answer)`);
  t.is(await scans(b!, 'yara'), 1, 'B ran yara on warm.txt only: big.bin was answered from the store');
  t.deepEqual(await tagDigests(b!, join(b!.dir, 'big.bin')), { signature: digest, yara: digest }, "B's own tags, with the content's digest");
});
