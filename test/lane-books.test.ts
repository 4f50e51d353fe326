// The native lane's files in the books (src/pool/lane-books.ts): `blessctl stats --by` and the scan-duration metric
// count the files a pool worker concluded without the main thread, summed per batch in the worker. Real daemon, real
// gate and scans, a real unprivileged user, blessctl over the control socket as `blessd run` wires it.
import test from 'ava';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import type { CostRow } from '../src/daemon/costs.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { runChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';
import { eicarAndClean } from './helpers/lane-seam.js';
import { withNotify } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const BLESSCTL = join(REPO, 'dist/src/cli/blessctl.js');
const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('lane-books tests skipped: they need root');

const N = 6;

t0('files concluded in a worker count in `blessctl stats --by process|path|uid` and in the scan durations', async (t) => {
  const atk = await makeAttacker(t);
  // No 'notice' listener, and verdicts built only for a subscriber (none): the native lane queue is on.
  const h = await withNotify(t, 'ext4', { asBlessd: true, prepare: (d) => eicarAndClean(d, N, EICAR) });
  await openToEveryone(h.dir);
  const before = h.daemon.stats().gate;
  const reads = await Promise.all(Array.from({ length: N }, (_, i) => atk.run('/usr/bin/head', ['-c', '20', join(h.dir, `clean${i}.txt`)])));
  for (let i = 0; i < N; i++) t.is(reads[i]!.stdout, `clean ${i}\n`);
  // Each clean file was concluded in a worker, or declined there (safe: JS then concluded it, and kept its books).
  await waitFor('every clean job to be finished', () => h.daemon.stats().gate.laneJobsConcluded + h.daemon.stats().gate.laneDeclined - before.laneJobsConcluded - before.laneDeclined === N, 10_000);
  const concluded = h.daemon.stats().gate.laneJobsConcluded - before.laneJobsConcluded;
  t.true(concluded >= 1, `clean files concluded in a worker: ${concluded} of ${N}`);
  t.regex((await atk.run('cat', [join(h.dir, 'eicar.com')])).stderr, /Operation not permitted/);

  const control = h.daemon.control();
  const headRow = () => control.costs('process', 50, 'judged').find((r: CostRow) => r.key === '/usr/bin/head');
  // The books come once per batch, after its last file: a bounded wait for the sums, not for each file.
  await waitFor('the lane batches\' books to reach the main thread', () => (headRow()?.judged ?? 0) >= N, 20_000);

  const ctl = (...args: string[]) => runChild(process.execPath, [BLESSCTL, ...args, '--socket', h.socket], { timeoutMs: 30_000 });
  const procs = JSON.parse((await ctl('stats', '--by', 'process', '--json')).stdout) as CostRow[];
  const head = procs.find((r) => r.key === '/usr/bin/head');
  t.like(head, { judged: N, waits: N, denied: 0 }, JSON.stringify(procs));
  t.true(head!.scans >= concluded && head!.scanMs > 0 && head!.waitedMs > 0, JSON.stringify(head));
  const uids = JSON.parse((await ctl('stats', '--by', 'uid', '--json')).stdout) as CostRow[];
  const mine = uids.find((r) => r.key === String(atk.uid));
  t.truthy(mine, JSON.stringify(uids));
  t.true(mine!.judged >= N + 1 && mine!.waits >= N + 1 && mine!.denied === 1, JSON.stringify(mine));
  const paths = JSON.parse((await ctl('stats', '--by', 'path', '--top', '50', '--json')).stdout) as CostRow[];
  for (let i = 0; i < N; i++) {
    const row = paths.find((r) => r.key === join(h.dir, `clean${i}.txt`));
    t.like(row, { judged: 1, denied: 0 }, `clean${i}.txt`);
    t.true(row!.scans >= 1, `clean${i}.txt scanned: ${JSON.stringify(row)}`);
  }
  // EICAR was scanned in a worker and handed to JS, which denied it from its tag: one scan, one verdict.
  t.like(paths.find((r) => r.key === join(h.dir, 'eicar.com')), { judged: 1, scans: 1, denied: 1 });

  // One duration per scan, the lane's among them (the counter of scans comes from the workers' shared slots).
  const stats = (await ctl('stats')).stdout;
  const scans = Number(/^scans\.signature (\d+)$/m.exec(stats)?.[1]);
  t.true(scans >= N + 1, stats);
  t.regex(stats, new RegExp(`^scanDurations\\.signature\\.count ${scans}$`, 'm'), 'one duration per scan');
  const sum = Number(/^scanDurations\.signature\.sumSeconds ([\d.e-]+)$/m.exec(stats)?.[1] ?? NaN);
  t.true(sum > 0, `the durations' sum: ${sum}`);
});
