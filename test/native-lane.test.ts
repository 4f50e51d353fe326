// The native cold lane, stage B (native/fanotify/lane_queue.cc, src/pool/lane-worker.ts): the reader thread queues
// a cold inode natively, a pool worker takes it, judges it and concludes a plain allow without the main thread;
// everything else is handed to JS as perm events. Real daemon, real gate, real scans, a real unprivileged user.
// The harness hears no notices unless asked (a listener turns the native queue off: it builds none).
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import type { Notice } from '../src/daemon/daemon.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { runChild, startChild } from './helpers/child.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { eicarAndClean, laneSeam, reloadMidConclusion } from './helpers/lane-seam.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('native-lane tests skipped: they need root');

const denied = /Operation not permitted|Permission denied/;
const again = /Resource temporarily unavailable/;

t0('cold files are judged and concluded in the workers without the main thread; an unprivileged user cannot read EICAR', async (t) => {
  const atk = await makeAttacker(t);
  const h = await withDaemon(t, 'ext4', {
    prepare: (d) => eicarAndClean(d, 20, EICAR),
  });
  await openToEveryone(h.dir);
  const before = h.daemon.stats();
  const reads = await Promise.all([
    atk.run('cat', [join(h.dir, 'eicar.com')]),
    ...Array.from({ length: 20 }, (_, i) => atk.run('cat', [join(h.dir, `clean${i}.txt`)])),
  ]);
  t.regex(reads[0]!.stderr, denied, `EICAR must be refused: ${JSON.stringify(reads[0])} ${JSON.stringify(h.daemon.stats().gate)}`);
  t.false(reads[0]!.stdout.includes('EICAR'), 'no byte of EICAR served');
  for (let i = 0; i < 20; i++) t.is(reads[i + 1]!.stdout, `clean ${i}\n`);
  const after = h.daemon.stats();
  const g = after.gate;
  t.true(g.laneQueued - before.gate.laneQueued >= 21, `queued natively: ${g.laneQueued - before.gate.laneQueued}`);
  // Every file reached a worker's conclusion: EICAR declined there (a deny is JS's), each clean file concluded there
  // or declined too (safe: JS then judges it, as without the lane; seen under load when a bless found its stamp moved).
  const concluded = g.laneJobsConcluded - before.gate.laneJobsConcluded;
  const declined = g.laneDeclined - before.gate.laneDeclined;
  t.is(concluded + declined, 21, `files at a worker's conclusion: ${concluded} concluded, ${declined} declined`);
  t.true(concluded >= 1 && declined >= 1, `concluded in a worker: ${concluded}, declined: ${declined} (EICAR among them)`);
  t.true(g.laneHanded - before.gate.laneHanded >= 1, 'EICAR handed to JS');
  // EICAR went through the main thread's judge queue (handed over), and at most the other declined files with it: a
  // file concluded in a worker never reached it.
  const sent = after.judgeQueue.sentFiles - before.judgeQueue.sentFiles;
  t.true(sent >= 1 && sent <= declined, `files sent to the main thread's judge queue: ${sent} (${declined} declined)`);
  t.is(after.verdicts.deny - before.verdicts.deny, 1, 'the deny counted (and logged) by JS');
  t.is(after.verdicts.allow - before.verdicts.allow, 20, 'the allows counted from the gate');
  t.true(g.laneWakes >= 1 && g.laneBatches >= 1);
  // From the cache now: the deny holds, the clean files pass.
  t.regex((await atk.run('cat', [join(h.dir, 'eicar.com')])).stderr, denied);
  t.is((await atk.run('cat', [join(h.dir, 'clean3.txt')])).stdout, 'clean 3\n');
});

t0('a change between the native judgement and its conclusion: nothing blessed, the reader is judged again by JS', async (t) => {
  const hold = laneSeam(t);
  const h = await withDaemon(t, 'ext4', { prepare: (d) => writeFile(join(d, 'f.txt'), 'good\n') });
  const file = join(h.dir, 'f.txt');
  const reader = startChild('cat', [file]);
  await waitFor('the worker to reach its conclusion', () => existsSync(`${hold}.reached`));
  t.is(h.daemon.stats().gate.laneQueued, 1, 'queued natively');
  await writeFile(file, EICAR);
  writeFileSync(hold, '');
  const r = await within('the reader to be answered', reader.done, 20_000);
  t.regex(r.stderr, denied, `cat must not get the old judgement's allow: ${r.stdout}`);
  t.false(r.stdout.includes('EICAR'));
  t.regex((await runChild('cat', [file])).stderr, denied, 'and nothing of the old judgement was cached');
  const g = h.daemon.stats().gate;
  t.is(g.laneJobsConcluded, 0, 'the worker concluded nothing');
  t.true(g.laneHanded >= 1, 'handed to JS');
});

t0('stop with native lane work in flight and queued: every waiting reader gets EAGAIN, never the content', async (t) => {
  const hold = laneSeam(t);
  const h = await withDaemon(t, 'ext4', {
    prepare: async (d) => {
      for (let i = 0; i < 4; i++) await writeFile(join(d, `f${i}.txt`), `good ${i}\n`);
    },
  });
  const readers = Array.from({ length: 4 }, (_, i) => startChild('cat', [join(h.dir, `f${i}.txt`)]));
  await waitFor('a worker to reach its conclusion', () => existsSync(`${hold}.reached`));
  await waitFor('every reader queued natively', () => h.daemon.stats().gate.laneQueued >= 4);
  const stopped = h.stop();
  for (const reader of readers) {
    const r = await within('the reader to be answered at stop', reader.done, 20_000);
    t.regex(r.stderr, again);
    t.is(r.stdout, '');
  }
  writeFileSync(hold, ''); // the workers go on after the gate is gone: they must conclude nothing
  await within('the daemon to stop', stopped, 20_000);
});

t0('a reload between the native judgement and its conclusion: the old epoch\'s allow is not used', async (t) => {
  const hold = laneSeam(t);
  const h = await withDaemon(t, 'ext4', { prepare: (d) => writeFile(join(d, 'r.txt'), 'RELOAD-ME\n') });
  const r = await reloadMidConclusion(h, hold, join(h.dir, 'r.txt'), () => t.is(h.daemon.stats().gate.laneQueued, 1));
  t.is(r.stdout, '', 'the old stack\'s judgement must not serve it');
  t.regex(r.stderr, /Operation not permitted|Resource temporarily unavailable/);
  t.is(h.daemon.stats().gate.laneJobsConcluded, 0);
  t.regex((await runChild('cat', [join(h.dir, 'r.txt')])).stderr, denied, 'the new stack judges');
});

t0('pool.queuePerUid bounds one uid\'s native jobs: past it, EAGAIN at once (and a fallback record), other uids unaffected', async (t) => {
  const hold = laneSeam(t);
  const atk = await makeAttacker(t);
  const h = await withDaemon(t, 'ext4', {
    queuePerUid: 1,
    prepare: async (d) => {
      for (let i = 0; i < 3; i++) await writeFile(join(d, `f${i}.txt`), `good ${i}\n`);
    },
  });
  await openToEveryone(h.dir);
  const first = atk.run('cat', [join(h.dir, 'f0.txt')]);
  await waitFor('the worker to hold the first file', () => existsSync(`${hold}.reached`));
  const second = await within('the second read', atk.run('cat', [join(h.dir, 'f1.txt')]), 10_000);
  t.regex(second.stderr, again, 'the uid is past its bound: refused, never a wait');
  t.is(second.stdout, '');
  t.true(h.daemon.stats().gate.laneRefused >= 1);
  // Root is another uid: its own read is queued (the bound is per uid), held behind the seam like the first.
  const other = startChild('cat', [join(h.dir, 'f2.txt')]);
  await waitFor('root\'s read queued natively', () => h.daemon.stats().gate.laneQueued >= 2);
  writeFileSync(hold, '');
  t.is((await within('the first read', first, 20_000)).stdout, 'good 0\n');
  t.is((await within('root\'s read', other.done, 20_000)).stdout, 'good 2\n');
  t.is((await atk.run('cat', [join(h.dir, 'f1.txt')])).stdout, 'good 1\n', 'and once the first is done, the next goes');
});

t0('the deadline answers a natively queued event (EAGAIN) and hands the slow job to JS; its late finish concludes nothing', async (t) => {
  const hold = laneSeam(t);
  const h = await withDaemon(t, 'ext4', { deadline: '400ms', prepare: (d) => writeFile(join(d, 'f.txt'), 'late\n') });
  const reader = startChild('cat', [join(h.dir, 'f.txt')]);
  await waitFor('the worker to reach its conclusion', () => existsSync(`${hold}.reached`));
  const r = await within('the deadline answer', reader.done, 10_000);
  t.regex(r.stderr, again);
  t.is(r.stdout, '');
  t.is(h.daemon.stats().gate.answeredByDeadline, 1);
  t.is(h.daemon.stats().gate.laneHanded, 1, 'the slow job left the lane at its deadline');
  writeFileSync(hold, '');
  await waitFor('the late job to end', () => h.daemon.stats().gate.laneLate === 1);
  t.is(h.daemon.stats().gate.laneJobsConcluded, 0, 'nothing concluded from the late job');
  // The worker wrote its result tag before it stopped: the reader thread settles the next read from it.
  t.is((await runChild('cat', [join(h.dir, 'f.txt')])).stdout, 'late\n', 'the next read is judged again and passes');
  t.is(h.daemon.stats().gate.fastTagsAllowed, 1);
});

t0('a verdict listener turns the native queue off (it builds no notices): every file then goes through JS and is heard', async (t) => {
  const h = await withDaemon(t, 'ext4', {
    prepare: async (d) => {
      await writeFile(join(d, 'a.txt'), 'a\n');
      await writeFile(join(d, 'b.txt'), 'b\n');
    },
  });
  t.is((await runChild('cat', [join(h.dir, 'a.txt')])).stdout, 'a\n');
  t.is(h.daemon.stats().gate.laneQueued, 1);
  const heard: Notice[] = [];
  h.daemon.on('notice', (n: Notice) => heard.push(n));
  await Promise.resolve(); // the lane follows at the end of this turn (newListener runs before the listener is added)
  t.is((await runChild('cat', [join(h.dir, 'b.txt')])).stdout, 'b\n');
  t.is(h.daemon.stats().gate.laneQueued, 1, 'not queued natively');
  await waitFor('the verdict notice', () => heard.some((n) => n.event === 'verdict' && String(n.path).endsWith('b.txt')));
});
