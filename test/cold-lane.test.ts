// The native cold lane, stage A (native/fanotify/lane.cc): a pool worker concludes a plain allow itself — the
// stamp-checked bless and the answers of the waiting events — and the main thread keeps only the books. Real daemon,
// real gate, real scans, a real unprivileged user.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { runChild, startChild } from './helpers/child.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { eicarAndClean, laneSeam, reloadMidConclusion } from './helpers/lane-seam.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('cold-lane tests skipped: they need root');

const denied = /Operation not permitted|Permission denied/;

t0('an unprivileged user cannot read EICAR through the worker-concluded path; clean files read, concluded in the worker', async (t) => {
  const atk = await makeAttacker(t);
  const h = await withDaemon(t, 'ext4', {
    notices: true, // a listener keeps the native queue off: these tests are of stage A (pool judge task + laneConclude)
    prepare: (d) => eicarAndClean(d, 20, EICAR),
  });
  await openToEveryone(h.dir);
  const before = h.daemon.stats().gate;
  // Cold, all at once, as the attacker: the clean ones go the worker's way, EICAR must not.
  const reads = await Promise.all([
    atk.run('cat', [join(h.dir, 'eicar.com')]),
    ...Array.from({ length: 20 }, (_, i) => atk.run('cat', [join(h.dir, `clean${i}.txt`)])),
  ]);
  t.regex(reads[0]!.stderr, denied, 'EICAR must be refused');
  t.false(reads[0]!.stdout.includes('EICAR'), 'no byte of EICAR served');
  for (let i = 0; i < 20; i++) t.is(reads[i + 1]!.stdout, `clean ${i}\n`);
  const after = h.daemon.stats().gate;
  // What is guaranteed: each clean file's judgement reached the worker's conclusion, which concluded it there or
  // declined it (safe: the main thread then concluded it, as without the lane — seen once under load: 19 and 1).
  // EICAR never gets there (a deny). The worker concluding at least one shows the path is taken at all.
  const concluded = after.laneConcluded - before.laneConcluded;
  const declined = after.laneDeclined - before.laneDeclined;
  t.true(concluded + declined >= 20, `clean files that reached the worker's conclusion: ${concluded} concluded, ${declined} declined`);
  t.true(concluded >= 1, `clean files concluded in a worker: ${concluded} (${declined} declined)`);
  t.true(after.laneAnswered - before.laneAnswered >= 1, 'the worker answered events itself');
  t.is(h.daemon.stats().verdicts.deny, 1);
  // And again, now from the cache: the deny holds, the clean files pass.
  t.regex((await atk.run('cat', [join(h.dir, 'eicar.com')])).stderr, denied);
  t.is((await atk.run('cat', [join(h.dir, 'clean3.txt')])).stdout, 'clean 3\n');
});

t0('a change between the judgement and the worker\'s conclusion: nothing blessed, nothing answered from the old judgement', async (t) => {
  const hold = laneSeam(t);
  const h = await withDaemon(t, 'ext4', { notices: true, prepare: (d) => writeFile(join(d, 'f.txt'), 'good\n') });
  const file = join(h.dir, 'f.txt');
  const reader = startChild('cat', [file]);
  // The worker judged "good" clean and stands just before concluding it.
  await waitFor('the worker to reach its conclusion', () => existsSync(`${hold}.reached`));
  await writeFile(file, EICAR); // our own write: not gated, but a content change like any other
  writeFileSync(hold, '');
  const r = await within('the reader to be answered', reader.done, 20_000);
  const g = h.daemon.stats().gate;
  t.regex(r.stderr, denied, `cat must not get the old judgement's allow: ${r.stdout} (${JSON.stringify({ c: g.laneConcluded, d: g.laneDeclined, stale: g.blessesStale })})`);
  t.false(r.stdout.includes('EICAR'));
  t.regex((await runChild('cat', [file])).stderr, denied, 'and nothing of the old judgement was cached');
  t.is(h.daemon.stats().gate.laneConcluded, 0, 'the worker concluded nothing');
  t.true(h.daemon.stats().gate.laneDeclined >= 1);
});

t0('stop with a conclusion in flight: the waiting reader gets EAGAIN (fail closed), never the content', async (t) => {
  const hold = laneSeam(t);
  const h = await withDaemon(t, 'ext4', { notices: true, prepare: (d) => writeFile(join(d, 'f.txt'), 'good\n') });
  const reader = startChild('cat', [join(h.dir, 'f.txt')]);
  await waitFor('the worker to reach its conclusion', () => existsSync(`${hold}.reached`));
  const stopped = h.stop();
  const r = await within('the reader to be answered at stop', reader.done, 20_000);
  t.regex(r.stderr, /Resource temporarily unavailable/);
  t.is(r.stdout, '');
  writeFileSync(hold, ''); // the worker goes on, after the gate is gone: it must conclude nothing
  await within('the daemon to stop', stopped, 20_000);
});

t0('a reload between the judgement and the worker\'s conclusion: the old stack\'s allow is not used', async (t) => {
  const hold = laneSeam(t);
  const h = await withDaemon(t, 'ext4', { notices: true, prepare: (d) => writeFile(join(d, 'r.txt'), 'RELOAD-ME\n') });
  const r = await reloadMidConclusion(h, hold, join(h.dir, 'r.txt'));
  t.is(r.stdout, '', 'the old stack\'s judgement must not serve it');
  t.regex(r.stderr, /Operation not permitted|Resource temporarily unavailable/);
  t.is(h.daemon.stats().gate.laneConcluded, 0);
  t.regex((await runChild('cat', [join(h.dir, 'r.txt')])).stderr, denied, 'the new stack judges');
});
