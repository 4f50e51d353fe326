// Only an answer about the content its digest names is shared: a file changed during its scan — even with its
// size kept and its mtime put back, so that its stamp looks the same — is not published (its ctime moved). The
// same scan of an unchanged file is, in the same run (the control that shows the test can see a publish).
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChild } from './helpers/child.js';
import { withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const fleet = async (h: FleetHost, k: string) => (await h.stats()).fleet?.[k] ?? 0;

rootTest('a file changed during its scan, stamp put back, is not published; an unchanged one is', async (t) => {
  const lab = await mkdtemp(join(tmpdir(), 'blessd-fleet-lab-'));
  t.teardown(() => rm(lab, { recursive: true, force: true }));
  // The scanner: reads the content, says it started, and answers ok once the test writes a line to its FIFO.
  const fifo = join(lab, 'go');
  execFileSync('mkfifo', [fifo]);
  const program = join(lab, 'slow-scanner');
  // Only while the test holds it (a "hold" file): rescans that follow a change run freely.
  await writeFile(program, `#!/bin/sh\ncat > /dev/null\nif [ -e "${lab}/hold" ]; then touch "${lab}/started-$BLESSD_SIZE"; read line < "${fifo}"; fi\nexit 0\n`);
  await chmod(program, 0o755);
  const f = await withFleet(t, ['a'], {
    stack: `stack:\n  - actor: exec\n    name: slow\n    options: { program: ${program} }\n  - actor: default\n    options: { answer: allow }\n`,
  });
  const a = f.hosts.a!;
  const hold = () => writeFile(join(lab, 'hold'), '');
  const release = async () => {
    await rm(join(lab, 'hold'));
    await writeFile(fifo, 'go\n'); // opens once the held scanner reads: it is waiting there
  };

  // The control: unchanged during its scan, published.
  const same = join(a.dir, 'unchanged');
  await writeFile(same, 'benign, and stays so\n'); // 21 bytes
  await hold();
  const r1 = startChild('cat', [same], 15_000);
  await waitFor('the scan of the unchanged file started', () => existsSync(join(lab, 'started-21')), 10_000);
  await release();
  t.is((await within('cat of the unchanged file', r1.done, 15_000)).code, 0);
  await waitFor('the unchanged file published', async () => (await fleet(a, 'published')) === 1, 10_000, 50);

  // Changed during its scan, same size, mtime put back: its stamp is as before, its ctime is not.
  const changed = join(a.dir, 'changed');
  await writeFile(changed, 'benign for the digest\n'); // 22 bytes
  await hold();
  const r2 = startChild('cat', [changed], 15_000);
  await waitFor('the scan of the changing file started', () => existsSync(join(lab, 'started-22')), 10_000);
  const before = statSync(changed, { bigint: true });
  execFileSync('sh', ['-c', `printf 'EVIL content, 22 byte\\n' > "${changed}"`]);
  const ns = before.mtimeNs;
  execFileSync('touch', ['-m', '-d', `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`, changed]);
  const after = statSync(changed, { bigint: true });
  t.is(after.size, before.size);
  t.is(after.mtimeNs, before.mtimeNs, 'the stamp fields are put back');
  t.not(after.ctimeNs, before.ctimeNs);
  await release();
  await within('cat of the changed file', r2.done, 15_000);
  // The answer of that scan is not shared under the digest taken before the change. (The change makes the file
  // dirty; a rescan of the new content may publish under the new content's digest: that one is right.)
  const keys = (await f.cli(['--scan', '--pattern', 'blessd:v1:slow:*'])).trim().split('\n').filter(Boolean);
  t.true(keys.some((k) => k.endsWith(sha('benign, and stays so\n'))), `the unchanged file's answer is in the store: ${keys.join(' ')}`);
  t.false(keys.some((k) => k.endsWith(sha('benign for the digest\n'))), `no answer under the changed file's first digest: ${keys.join(' ')}`);
});
