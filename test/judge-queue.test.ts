// The cold path's queue in front of the pool (src/pool/judge-queue.ts): the real queue, with a pool that records
// every batch it is handed and lets the test end each one. Fairness across uids, batching, what a failed batch
// means for its files, shutdown.
import test from 'ava';
import { JudgeQueue, type JudgeFailure, type JudgeJob } from '../src/pool/judge-queue.js';
import type { JudgedFile, JudgePolicy, JudgeResult } from '../src/pool/tasks.js';

type Reply = JudgeResult | { failed: 'timeout' | 'crash'; message: string };

class Pool {
  readonly batches: { fds: number[]; end: (r: Reply) => void }[] = [];
  judge(fds: number[]): Promise<Reply> {
    return new Promise((end) => this.batches.push({ fds, end }));
  }
  /** End batch `i` with a judgement per file. */
  ok(i: number) {
    const b = this.batches[i]!;
    b.end({ files: b.fds.map((fd) => file(fd)) });
  }
}

const file = (fd: number): JudgedFile => ({ path: `/f${fd}`, answers: [], transient: [], slow: [], scans: [], uncounted: [], tagErrors: [], fromTags: true });
const POLICY = {} as JudgePolicy;
const tick = () => new Promise((r) => setImmediate(r));

function jobs(n: number, from = 0) {
  const results = new Map<number, (JudgedFile | JudgeFailure)[]>();
  const list: JudgeJob[] = Array.from({ length: n }, (_, i) => {
    const fd = from + i;
    return { fd, cancelled: false, done: (r) => results.set(fd, [...(results.get(fd) ?? []), r]) };
  });
  return { list, results };
}

test('a file another uid waits for goes at that uid\'s turn, not at the back of the first uid\'s queue', async (t) => {
  const pool = new Pool();
  const q = new JudgeQueue(pool, 1, () => POLICY, 1);
  const { list, results } = jobs(6);
  for (const j of list) q.submit(j, 100); // the flooder opened all six first
  q.alsoFor(list[5]!, 200); // the victim reads the last of them
  await tick();
  t.deepEqual(pool.batches.map((b) => b.fds), [[0]], 'one batch per worker in flight');
  const order: number[] = [];
  for (let i = 0; i < 6; i++) {
    order.push(...pool.batches[i]!.fds);
    pool.ok(i);
    await tick();
  }
  t.deepEqual(order, [0, 5, 1, 2, 3, 4], "the victim waits for one turn of the flooder, not for its whole queue");
  t.is(results.size, 6);
  t.true([...results.values()].every((r) => r.length === 1), 'each job done exactly once, although queued twice');
});

test('a batch takes what waits when a worker is free, round-robin across uids', async (t) => {
  const pool = new Pool();
  const q = new JudgeQueue(pool, 1, () => POLICY, 16);
  const a = jobs(4, 0);
  const b = jobs(2, 10);
  q.submit(a.list[0]!, 100);
  t.is(pool.batches.length, 0, 'sent at the end of the turn it was submitted in');
  await tick();
  t.deepEqual(pool.batches.map((x) => x.fds), [[0]], 'light load: the first file goes at once (no timer), alone');
  for (const j of a.list.slice(1)) q.submit(j, 100);
  for (const j of b.list) q.submit(j, 200);
  pool.ok(0);
  await tick();
  t.deepEqual(pool.batches[1]!.fds, [1, 10, 2, 11, 3], 'then one message for everything that waited, uids taking turns');
});

test('a failed batch sends each of its files again alone; a file that fails alone gets the failure', async (t) => {
  const pool = new Pool();
  const q = new JudgeQueue(pool, 1, () => POLICY, 16);
  const { list, results } = jobs(4);
  q.submit(list[0]!, 100);
  await tick();
  for (const j of list.slice(1)) q.submit(j, 100);
  pool.ok(0);
  await tick();
  t.deepEqual(pool.batches[1]!.fds, [1, 2, 3]);
  pool.batches[1]!.end({ failed: 'timeout', message: 'no file of the batch judged within 5000 ms' });
  await tick();
  t.deepEqual(pool.batches[2]!.fds, [1], 'alone, in their order');
  t.is(results.get(1), undefined, 'not failed yet: the failure may not be its own');
  pool.batches[2]!.end({ failed: 'timeout', message: 'again' });
  await tick();
  t.deepEqual(results.get(1), [{ failed: 'timeout', message: 'again' }]);
  t.deepEqual(pool.batches[3]!.fds, [2]);
  pool.ok(3);
  await tick();
  t.deepEqual(pool.batches[4]!.fds, [3]);
  pool.ok(4);
  await tick();
  t.deepEqual([...results.keys()].sort(), [0, 1, 2, 3]);
  t.true([...results.values()].every((r) => r.length === 1));
});

test('a cancelled job is skipped but still done once; closing the queue finishes every queued job', async (t) => {
  const pool = new Pool();
  const q = new JudgeQueue(pool, 1, () => POLICY, 16);
  const { list, results } = jobs(3);
  q.submit(list[0]!, 100);
  await tick();
  for (const j of list.slice(1)) q.submit(j, 100);
  list[1]!.cancelled = true;
  pool.ok(0);
  await tick();
  t.deepEqual(pool.batches[1]!.fds, [2], 'the cancelled one never reaches a worker');
  t.deepEqual(results.get(1), [{ failed: 'cancelled', message: 'no longer wanted' }]);
  const more = jobs(2, 10);
  for (const j of more.list) q.submit(j, 300);
  q.close();
  t.deepEqual(more.results.get(10), [{ failed: 'cancelled', message: 'the daemon is stopping' }]);
  t.deepEqual(more.results.get(11), [{ failed: 'cancelled', message: 'the daemon is stopping' }]);
  pool.ok(1);
  await tick();
  t.is(results.get(2)?.length, 1, 'the batch in flight still delivers');
  t.is(pool.batches.length, 2, 'nothing sent after close');
});

test('stats count each waiting file once, however many uids want it', async (t) => {
  const pool = new Pool();
  const q = new JudgeQueue(pool, 1, () => POLICY, 16);
  const { list } = jobs(3);
  q.submit(list[0]!, 100);
  await tick();
  for (const j of list.slice(1)) q.submit(j, 100);
  q.alsoFor(list[2]!, 200);
  t.deepEqual(q.stats(), { waiting: 2, batches: 1, sentBatches: 1, sentFiles: 1 });
  pool.ok(0);
  await tick();
  t.deepEqual(q.stats(), { waiting: 0, batches: 1, sentBatches: 2, sentFiles: 3 });
  pool.ok(1);
  await tick();
  t.deepEqual(q.stats(), { waiting: 0, batches: 0, sentBatches: 2, sentFiles: 3 });
});

test('files submitted in one turn of the event loop go to the pool as one message, even with workers free', async (t) => {
  const pool = new Pool();
  const q = new JudgeQueue(pool, 2, () => POLICY, 16);
  const { list, results } = jobs(3);
  for (const j of list) q.submit(j, 100); // one batch of permission events from the reader thread
  await tick();
  t.deepEqual(pool.batches.map((b) => b.fds), [[0, 1, 2]], 'one postMessage for the turn, not one per free worker');
  q.submit(jobs(1, 10).list[0]!, 200);
  await tick();
  t.deepEqual(pool.batches[1]!.fds, [10], 'the next turn\'s file takes the free worker');
  pool.ok(0);
  await tick();
  t.is(results.size, 3);
});
