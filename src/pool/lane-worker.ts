// Overview — a pool worker's side of the native cold lane (stage B, native/fanotify/lane_queue.cc): the reader thread
// queues cold inodes natively and wakes an idle worker once per round of events read; the worker takes up to
// BATCH_MAX of them, judges them with judgeBatch (the same code as a Piscina judge task) and finishes each natively —
// a plain allow is concluded there (bless + answers, from this thread), everything else is handed to JS as 'perm'
// events and takes today's path. The main thread is not woken for a file concluded here at all.
//
// Owns: the drain loop (take, judge, finish, until nothing waits), the policy of each lane epoch (announced by the
// main thread on the pool's channel: ScanPool.announceLane), the batch's deadline.
// Must not: leave a taken job unfinished (every one gets laneFinish: concluded or handed over), close a job's fd
// while a scan may still read it, or conclude with a policy other than its epoch's (no policy known: hand over).
import { appendFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { native } from '../gate/addon.js';
import { judgeBatch } from './judge-batch.js';
import { booksOf, exeOf, keepBooks, type LaneBooks } from './lane-books.js';
import { BATCH_MAX } from './judge-queue.js';
import type { PolicyRef } from './policy-wire.js';
import { SLOT_BEGUN, SLOT_GROUPS, SLOT_GROUPS_AT, type JudgeTask } from './tasks.js';

/** What the main thread announces per lane epoch. */
export interface LaneAnnounce {
  epoch: number;
  policy: PolicyRef;
  chunkSize?: number;
  timeoutMs: number;
}

/** Tests only (test/lane-turns.test.ts, with the lane seam of judge-batch.ts): each batch's files, in take order. */
const TAKEN_LOG = process.env['BLESSD_TEST_LANE_HOLD'] ? `${process.env['BLESSD_TEST_LANE_HOLD']}.taken` : undefined;
const epochs = new Map<number, LaneAnnounce>();
const KEEP = 4;
let worker = 0;
let draining = false;
let markers = 0;
/** The ways to the main thread: actors' helper pids, and each batch's books (lane-books.ts). */
export interface LaneOut {
  helpers(helperPids: Record<string, number[]>): void;
  books(books: LaneBooks): void;
}
let out: LaneOut | undefined;

/** In the worker's start: serve this pool's lane. */
export function attachLane(pool: number, to: LaneOut): void {
  out = to;
  worker = native.laneAttach(pool, () => void drain());
  // A worker that replaces one gone mid-batch: jobs may wait already, and the reader woke only the workers it knew.
  setImmediate(() => void drain());
}

/** The policy of a new lane epoch (the main thread's announce, on the pool's channel). */
export function laneEpoch(a: LaneAnnounce): void {
  epochs.set(a.epoch, a);
  if (epochs.size > KEEP) epochs.delete(epochs.keys().next().value as number);
}

/** Tests and status: how many batches this worker judged from the lane. */
export let laneBatches = 0;

async function drain(): Promise<void> {
  // Woken only while idle (lane_queue.cc marks a worker idle when its take finds nothing); between a take that
  // found nothing and this flag's reset there is no await, so no wake-up is lost.
  if (draining) return;
  draining = true;
  try {
    for (;;) {
      const b = native.laneTake(worker, BATCH_MAX);
      if (!b) break;
      laneBatches++;
      await runBatch(b.lane, b.epoch, b.jobs);
    }
  } finally {
    draining = false;
  }
}

async function runBatch(lane: number, epoch: number, jobs: number[]): Promise<void> {
  const tickets: number[] = [];
  const fds: number[] = [];
  const seqs: number[] = [];
  for (let i = 0; i < jobs.length; i += 4) {
    tickets.push(jobs[i]!);
    fds.push(jobs[i + 1]!);
    seqs.push(jobs[i + 2]!);
    exeOf(jobs[i + 3]!); // named now, while it waits: once answered it may be gone before the books are kept
  }
  if (TAKEN_LOG) appendFileSync(TAKEN_LOG, fds.map((fd) => `${native.fdPath(fd) ?? fd}\n`).join(''));
  const finished = new Set<number>();
  const handOver = (i: number) => {
    if (finished.has(i)) return;
    finished.add(i);
    try {
      native.laneFinish(lane, epoch, tickets[i]!, false);
    } catch {
      /* the gate is gone: Shutdown answered its events */
    }
  };
  const closeAll = () => {
    for (const fd of fds) native.closeFd(fd);
  };
  const a = epochs.get(epoch);
  if (!a) {
    // This epoch's policy has not reached this worker yet (a reload just now): JS judges these, as before.
    tickets.forEach((_, i) => handOver(i));
    return closeAll();
  }
  const started = new SharedArrayBuffer(SLOT_GROUPS_AT + 4 * Math.max(SLOT_GROUPS, fds.length * 4));
  const task: JudgeTask = { op: 'judge', fds, policy: a.policy, started, marker: `${process.pid}.lane${threadId}.${++markers}`, lane: { gate: lane, epoch, seqs, tickets, finished } };
  if (a.chunkSize !== undefined) task.chunkSize = a.chunkSize;
  // The batch's deadline, as the pool's: timeoutMs without progress (a file judged). Past it, what is left goes to
  // JS (whose pool task has the kill of stuck scans); the fds stay open until the scans let go of them.
  const times = new Float64Array(started, 0, 2);
  let timer: NodeJS.Timeout | undefined;
  const watch = () => {
    const since = Date.now() - (times[SLOT_BEGUN] || Date.now());
    if (since >= a.timeoutMs) tickets.forEach((_, i) => handOver(i));
    else timer = setTimeout(watch, a.timeoutMs - since);
  };
  timer = setTimeout(watch, a.timeoutMs);
  try {
    const r = await judgeBatch(task);
    if (r.helperPids) out?.helpers(r.helperPids);
    const books = booksOf(r.files);
    if (books && out) keepBooks(books, out.books);
  } catch {
    /* a bug in the batch: JS judges its files again */
  } finally {
    clearTimeout(timer);
    tickets.forEach((_, i) => handOver(i)); // all but those concluded (judge-batch.ts marks them finished)
    closeAll();
  }
}
