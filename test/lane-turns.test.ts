// The native lane's per-uid round robin (lane_queue.cc LaneTake: one job per uid per turn): a uid that floods cold
// files does not make another uid's cold read wait behind the whole flood. Counted, not timed: the lane seam
// (judge-batch.ts, lane-worker.ts) logs each batch's files as a worker takes them, in order.
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { laneSeam } from './helpers/lane-seam.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('lane-turns tests skipped: they need root');

const FIRST = 24; // the flood that fills both workers' first batches
const MORE = 160; // queued behind them, before the victim's read: ten batches' worth (kTakeMax 16)

t0("one uid floods cold files: another uid's cold read is taken in its turn, not behind the flood", async (t) => {
  const hold = laneSeam(t);
  const flooder = await makeAttacker(t, 'fld');
  const victim = await makeAttacker(t, 'vic');
  const h = await withDaemon(t, 'ext4', {
    prepare: async (d) => {
      for (let i = 0; i < FIRST + MORE; i++) await writeFile(join(d, `flood${i}.txt`), `flood ${i}\n`);
      await writeFile(join(d, 'victim.txt'), 'victim\n');
    },
  });
  await openToEveryone(h.dir);
  const read = (who: typeof flooder, i: number | 'victim') => who.run('cat', [join(h.dir, i === 'victim' ? 'victim.txt' : `flood${i}.txt`)], { timeoutMs: 60_000 });

  // Both workers take a batch of the flood and hold it (a worker takes no more while its batch is under way).
  const first = Array.from({ length: FIRST }, (_, i) => read(flooder, i));
  await waitFor('both workers to hold a batch', () => h.daemon.stats().gate.laneBatches >= 2, 20_000);
  const held = h.daemon.stats().gate;
  // Then the rest of the flood queues behind them, and the victim's read after all of it.
  const more = Array.from({ length: MORE }, (_, i) => read(flooder, FIRST + i));
  await waitFor('the flood to be queued', () => h.daemon.stats().gate.laneQueued === FIRST + MORE, 20_000);
  const mine = read(victim, 'victim');
  await waitFor("the victim's read to be queued", () => h.daemon.stats().gate.laneQueued === FIRST + MORE + 1, 20_000);
  t.is(h.daemon.stats().gate.laneBatches, held.laneBatches, 'nothing taken while the workers hold their batches');
  writeFileSync(hold, '');

  t.is((await within("the victim's read", mine, 30_000)).stdout, 'victim\n');
  const all = await within('the flood', Promise.all([...first, ...more]), 30_000);
  all.forEach((r, i) => t.is(r.stdout, `flood ${i}\n`));
  // Every job finished in a worker: concluded there, or declined (safe: JS concludes it; rare, under load).
  const finished = () => h.daemon.stats().gate.laneJobsConcluded + h.daemon.stats().gate.laneDeclined;
  await waitFor('every job to be finished in a worker', () => finished() === FIRST + MORE + 1, 10_000);

  // The order in which the workers took the files (the lane seam logs each batch as it is taken): the victim's job
  // is taken in the first batch after the release, second in it (the flood's turn, then its own) — not after the
  // MORE flood files queued before it.
  const order = readFileSync(`${hold}.taken`, 'utf8').split('\n').filter(Boolean).map((p) => p.slice(h.dir.length + 1));
  // The first flood files may have gone to JS (a worker not yet told the stack's policy hands its batch over): only
  // the later flood, queued while both workers held a batch, is counted, and every one of it was taken this way.
  const later = (n: string) => /^flood(\d+)\.txt$/.test(n) && Number(/^flood(\d+)\.txt$/.exec(n)![1]) >= FIRST;
  t.is(order.filter(later).length, MORE, `the later flood taken by the workers: ${order.join(' ')}`);
  const at = order.indexOf('victim.txt');
  t.true(at >= 0, `the victim's file taken by a worker: ${order.join(' ')}`);
  const before = order.slice(0, at).filter(later).length;
  t.log(`flood files of the later queue taken before the victim's: ${before} of ${MORE}`);
  // The other worker's batch, taken just after, may be logged first: at most one batch (kTakeMax 16) and the flood's
  // own turn go first. First come, first served, all MORE of them would.
  t.true(before <= 17, `the victim's job was taken after ${before} of the ${MORE} flood files queued before it`);
});
