// A pool worker that dies in the middle of a native lane batch (lane_queue.cc LaneWorkerGone): its jobs go to JS at
// once, never to the deadline and never answered allow from the dead batch; the lane goes on with the workers left.
// Real daemon, real gate, real scans; the worker dies of an uncaught exception (the lane seam, judge-batch.ts).
import test from 'ava';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import { startChild, runChild } from './helpers/child.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { laneSeam } from './helpers/lane-seam.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('lane-worker-gone tests skipped: they need root');

const denied = /Operation not permitted|Permission denied/;

t0('a worker that dies mid-batch: its jobs go to JS at once (not to the deadline), EICAR stays refused, the lane goes on', async (t) => {
  const hold = laneSeam(t);
  // A deadline far beyond the waits below: an answer that came from it would fail them.
  const h = await withDaemon(t, 'ext4', {
    deadline: '120s',
    prepare: async (d) => {
      await writeFile(join(d, 'good.txt'), 'good\n');
      await writeFile(join(d, 'eicar.com'), EICAR);
      await writeFile(join(d, 'after.txt'), 'after\n');
    },
  });
  const good = startChild('cat', [join(h.dir, 'good.txt')]);
  const bad = startChild('cat', [join(h.dir, 'eicar.com')]);
  // good.txt judged clean: its worker stands just before concluding it, with the job (and maybe EICAR's) taken.
  await waitFor('the worker to reach its conclusion', () => existsSync(`${hold}.reached`));
  t.is(h.daemon.stats().gate.laneQueued, 2, 'both queued natively');
  writeFileSync(`${hold}.die`, '');
  const died = performance.now();
  await waitFor('the dying worker\'s jobs to be handed over', () => h.daemon.stats().gate.laneOrphaned >= 1, 20_000);
  // The seam holds JS's own judgement too (stage A, judge-batch.ts): let it go now that the worker is gone.
  writeFileSync(hold, '');
  const [g, b] = await within('both readers to be answered', Promise.all([good.done, bad.done]), 20_000);
  t.log(`both answered ${(performance.now() - died).toFixed(0)} ms after the worker was told to die`);
  const s = h.daemon.stats().gate;
  t.is(g.stdout, 'good\n', `judged again by JS and served: ${g.stderr}`);
  t.regex(b.stderr, denied, 'EICAR refused');
  t.false(b.stdout.includes('EICAR'), 'no byte of EICAR served');
  t.true(s.laneOrphaned >= 1, `the dead worker's jobs handed over: ${s.laneOrphaned}`);
  t.is(s.answeredByDeadline, 0, 'nothing waited for the deadline');
  t.is(s.laneJobsConcluded, 0, 'the dead batch concluded nothing');
  t.is(h.daemon.stats().verdicts.deny, 1);

  // The workers left (and the one that replaced the dead one) take the next cold file and conclude it.
  rmSync(`${hold}.die`);
  t.is((await within('a read after the death', runChild('cat', [join(h.dir, 'after.txt')]), 20_000)).stdout, 'after\n');
  // Counted just after the worker wrote the answer: waited for, bounded.
  await waitFor(`after.txt concluded in a worker (${JSON.stringify(h.daemon.stats().gate)})`, () => h.daemon.stats().gate.laneJobsConcluded === 1, 10_000);
  t.regex((await runChild('cat', [join(h.dir, 'eicar.com')])).stderr, denied, 'the deny holds');
});
