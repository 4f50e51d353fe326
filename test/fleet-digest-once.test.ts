// Digest once (issue 15, item 2): with a content pass (the signature actor) and an expensive engine (yara) on a
// file, the fleet key is the SHA-256 the signature pass computes while it scans — no read of the file for the
// digest alone — and the store still spares the expensive engine on another host. Reads are measured, not mocked:
// the daemon's /proc/<pid>/io `rchar` (every byte its threads got from read/pread, page cache or not) around one
// cold file.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild, startChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';
import { daemonRchar, fleetCount, incompressible, signatureMarkerStack, withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const MiB = 1 << 20;
const SIZE = 16 * MiB;

const MARKER = Buffer.from('a file the yara rule names: EVIL-MARKER\n'.repeat(10));


const rchar = daemonRchar;

const scans = async (h: FleetHost, name: string) => (await h.stats()).scans[name] ?? 0;
const cat = (p: string) => runChild('cat', [p], { timeoutMs: 30_000 });

rootTest('a store miss reads the file once for the signature pass and the digest; a hit on B spares yara (zero yara scans)', async (t) => {
  const f = await withFleet(t, ['a', 'b'], { stack: await signatureMarkerStack(t), sizeMiB: 128 });
  const { a, b } = f.hosts as Record<string, FleetHost>;
  const big = incompressible(SIZE); // the same bytes on every host
  for (const h of [a!, b!]) {
    await writeFile(join(h.dir, 'warm.txt'), 'loads the actors and connects the store before the measured file\n');
    await writeFile(join(h.dir, 'big.bin'), big);
    await writeFile(join(h.dir, 'marker.txt'), MARKER);
  }

  // Host A. A warm-up file first: its reads (databases, rules, the store's first replies) are not the big file's.
  t.is((await cat(join(a!.dir, 'warm.txt'))).code, 0);
  await waitFor('A published warm.txt (yara: the signature pass is not served)', async () => (await fleetCount(a!, 'published')) === 1, 15_000, 50);
  const before = await rchar(a!);
  const read = await cat(join(a!.dir, 'big.bin'));
  t.is(read.code, 0, read.stderr);
  await waitFor('A published big.bin (yara)', async () => (await fleetCount(a!, 'published')) === 2, 15_000, 50);
  const readOnA = (await rchar(a!)) - before;
  // yara (YARA-X) takes the file whole into memory: that read is the engine's own. Everything else blessd read of
  // it is the signature pass, which also gave the digest. Before, the digest was a read of its own: 3 × SIZE.
  const ownReads = (readOnA - SIZE) / SIZE;
  t.log(`A read ${(readOnA / MiB).toFixed(2)} MiB for a ${SIZE / MiB} MiB cold file: ${ownReads.toFixed(2)} reads by blessd besides yara's own`);
  t.true(ownReads >= 0.99 && ownReads < 1.5, `blessd read the file ${ownReads.toFixed(2)} times besides yara's read (want 1: the pass is the digest)`);
  t.is(await scans(a!, 'signature'), 2);
  t.is(await scans(a!, 'yara'), 2);
  const digest = createHash('sha256').update(big).digest('hex');
  const keys = (await f.cli(['--scan', '--pattern', `blessd:v1:*:${digest}`])).trim().split('\n').sort();
  t.deepEqual(keys.map((k) => k.split(':')[2]), ['yara'], "yara's answer under the content SHA-256 the pass computed (the pass itself is not served: src/fleet/scope.ts)");

  // A yara deny, shared too.
  t.regex((await cat(join(a!.dir, 'marker.txt'))).stderr, /Operation not permitted/);
  await waitFor('A published marker.txt', async () => (await fleetCount(a!, 'published')) === 3, 15_000, 50);

  // Host B: the signature pass runs (it is the digest), yara is answered from the store.
  const beforeB = await rchar(b!);
  t.is((await cat(join(b!.dir, 'big.bin'))).code, 0);
  const readOnB = (await rchar(b!)) - beforeB;
  t.regex((await cat(join(b!.dir, 'marker.txt'))).stderr, /Operation not permitted/, "A's yara deny holds on B");
  t.is(await scans(b!, 'yara'), 0, 'B ran yara on nothing');
  t.is(await scans(b!, 'signature'), 2, 'the signature pass ran on B: it is the read that gives the digest');
  t.is(await fleetCount(b!, 'hits'), 2, 'one lookup per file, of the yara key alone');
  t.log(`B read ${(readOnB / MiB).toFixed(2)} MiB: the signature pass, and yara's answer from the store`);
  t.true(readOnB / SIZE >= 0.99 && readOnB / SIZE < 1.5, `B read big.bin ${(readOnB / SIZE).toFixed(2)} times (want 1: the pass, no digest read)`);
});

rootTest('with the pass as the digest, an engine whose file changed during its scan (stamp put back) publishes nothing; the pass itself is never published', async (t) => {
  // As test/fleet-changed.test.ts, with the signature pass before the held scanner: the digest is the pass's, and
  // the held scanner's answer must not be published under it once the file changed.
  const lab = await mkdtemp(join(tmpdir(), 'blessd-digest-once-lab-'));
  t.teardown(() => rm(lab, { recursive: true, force: true }));
  const fifo = join(lab, 'go');
  execFileSync('mkfifo', [fifo]);
  const program = join(lab, 'slow-scanner');
  await writeFile(program, `#!/bin/sh\ncat > /dev/null\nif [ -e "${lab}/hold" ]; then touch "${lab}/started-$BLESSD_SIZE"; read line < "${fifo}"; fi\nexit 0\n`);
  await chmod(program, 0o755);
  const f = await withFleet(t, ['a'], {
    stack: `stack:
  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: exec
    name: slow
    options: { program: ${program} }
  - actor: default
    options: { answer: allow }
`,
  });
  const a = f.hosts.a!;
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const hold = () => writeFile(join(lab, 'hold'), '');
  const release = async () => {
    await rm(join(lab, 'hold'));
    await writeFile(fifo, 'go\n');
  };

  // The control: unchanged during the held scan, both answers published.
  const same = join(a.dir, 'unchanged');
  await writeFile(same, 'benign, and stays so\n'); // 21 bytes
  await hold();
  const r1 = startChild('cat', [same], 15_000);
  await waitFor('the held scan of the unchanged file started', () => existsSync(join(lab, 'started-21')), 10_000);
  await release();
  t.is((await within('cat of the unchanged file', r1.done, 15_000)).code, 0);
  await waitFor('the unchanged file published by the held scanner', async () => (await fleetCount(a, 'published')) === 1, 10_000, 50);

  const changed = join(a.dir, 'changed');
  await writeFile(changed, 'benign for the digest\n'); // 22 bytes
  await hold();
  const r2 = startChild('cat', [changed], 15_000);
  await waitFor('the held scan of the changing file started', () => existsSync(join(lab, 'started-22')), 10_000);
  const before = statSync(changed, { bigint: true });
  execFileSync('sh', ['-c', `printf 'EVIL content, 22 byte\\n' > "${changed}"`]);
  const ns = before.mtimeNs;
  execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, changed]);
  t.is(statSync(changed, { bigint: true }).mtimeNs, before.mtimeNs, 'the stamp fields are put back');
  await release();
  await within('cat of the changed file', r2.done, 15_000);
  const keys = async (scanner: string) => (await f.cli(['--scan', '--pattern', `blessd:v1:${scanner}:*`])).trim().split('\n').filter(Boolean);
  // A wrong publish would be sent before the changed file's answer is handed back (share.ts publishes before the
  // tag write), so before the cat above returned. The event to wait for: a later file's publish, which comes after
  // it — once that key is in the store, a wrong one would be too.
  const after = join(a.dir, 'after');
  await writeFile(after, 'benign, read after the change\n');
  t.is((await cat(after)).code, 0);
  await waitFor("the later file's answer published", async () => (await keys('slow')).some((k) => k.endsWith(sha('benign, read after the change\n'))), 10_000, 50);
  // The pass is the digest, never a served scanner: nothing of it in the store.
  t.deepEqual(await keys('signature'), []);
  const slow = await keys('slow');
  t.true(slow.some((k) => k.endsWith(sha('benign, and stays so\n'))), `the unchanged file's answer is in the store: ${slow.join(' ')}`);
  t.false(slow.some((k) => k.endsWith(sha('benign for the digest\n'))), `no answer of the held scanner under the pass's digest: ${slow.join(' ')}`);
});
