// Attacks on the control socket by a member of socket.group (issue 9.10): holding every connection slot must not
// lock out root; subscribing must not reveal paths of files the member's uid could not find itself.
import test from 'ava';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { runChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';
import { PYTHON, withNotify } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const BLESSCTL = join(REPO, 'dist/src/cli/blessctl.js');
const script = (name: string) => readFile(join(REPO, 'test/fixtures', name), 'utf8');

t0('a socket.group member holding 300 connections locks out neither root\'s blessctl nor a scanner registration', async (t) => {
  const a = await makeAttacker(t);
  const h = await withNotify(t, 'tmpfs', { socket: { group: a.gid, mode: 0o660 } });
  await chmod(h.scratch.base, 0o711); // the member reaches the socket file; the mode and group do the rest
  const hog = a.start(PYTHON, ['-c', await script('socket-hog.py'), h.socket, '300']);
  await waitFor('the hog to report what it holds', () => /holding \d+ of 300/.test(hog.output()), 20_000);

  const status = await runChild(process.execPath, [BLESSCTL, 'status', '--json', '--socket', h.socket], { timeoutMs: 10_000 });
  t.is(status.code, 0, `root's blessctl must get in: ${status.stderr}`);
  const scanner = await h.client();
  t.like(await scanner.request('register', { scanner: 'rootscan' }), { ok: true, scanner: 'rootscan' });
  const kept = Number(/holding (\d+)/.exec(hog.output())![1]);
  t.true(kept >= 1 && kept <= 16, `one uid holds at most 16 connections (held ${kept})`);
  const stats = (await scanner.request('stats')) as any;
  t.true(stats.stats.notify.refused >= 300 - 16, 'the refusals are counted');
});

t0('a non-root subscriber hears of files its uid could find, not of files in directories it cannot list', async (t) => {
  const a = await makeAttacker(t);
  const h = await withNotify(t, 'tmpfs', { socket: { group: a.gid, mode: 0o660 } });
  await chmod(h.scratch.base, 0o711);
  await openToEveryone(h.dir);
  await mkdir(join(h.dir, 'secret'), { mode: 0o700 }); // root's: the attacker cannot list it
  await mkdir(join(h.dir, 'hidden'), { mode: 0o711 }); // searchable but not listable
  await mkdir(join(h.dir, 'open'), { mode: 0o755 });
  for (const d of ['secret', 'hidden', 'open']) await writeFile(join(h.dir, d, 'f.txt'), 'v1\n');

  const sub = a.start(PYTHON, ['-c', await script('subscriber.py'), h.socket, 'verdicts']);
  await waitFor('the subscription to be confirmed', () => sub.output().includes('"subscribed"'), 10_000);
  // Changes in order: the withheld ones first, so that the notice of the visible one proves the others were passed over.
  for (const d of ['secret', 'hidden', 'open']) await runChild('sh', ['-c', `echo v2 >> ${join(h.dir, d, 'f.txt')}`]);
  await waitFor('the dirty notice of open/f.txt', () => sub.output().includes(join(h.dir, 'open', 'f.txt')), 10_000);
  const out = sub.output();
  t.false(out.includes('secret'), `nothing of secret/ reaches the subscriber: ${out}`);
  t.false(out.includes('hidden'), `nothing of hidden/ (searchable, not listable) either: ${out}`);

  // Root still hears of everything.
  const root = await h.client();
  const status = (await root.request('status')) as any;
  const mine = status.queues.subscribers.find((s: any) => s.client.includes(`uid ${a.uid}`));
  t.true(mine.withheld >= 2, `withheld counted: ${JSON.stringify(mine)}`);
});
