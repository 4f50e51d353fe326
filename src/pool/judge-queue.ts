// Overview — the cold path's queue in front of the pool: files waiting to be judged (judge-batch.ts does the work
// in a worker), handed out in batches, round-robin across the uids waiting for them.
//
// Owns: the per-uid queues, the batches in flight (at most one per worker, so the order is decided here and the
// pool's own queue stays empty), and what a failed batch means for its files. A file may be wanted by several uids
// (a victim reading a file the flooder opened first): it is queued under each, and goes at the first of their
// turns — nobody waits in somebody else's queue.
// Batching: a batch takes what is queued when a worker is free, up to BATCH_MAX files; at light load that is one
// file. Under load one message carries many files. Files submitted in one turn of the event loop (the permission
// events of one batch from the reader thread) are sent together, at the end of that turn (a microtask: no timer, no
// waiting to fill a batch): each message costs the main thread a wake-up of a worker, ~40-50 µs on these VMs
// (docs/bench.md, "Main thread, session 5"), whatever it carries.
// Cancel is a flag (no AbortController, no DOMException): a queued job cancelled is skipped, a sent one's result is
// handed back all the same (its owner decides; its descriptor must stay open until then).
// Must not: lose a job (every submitted job gets exactly one done()), or block.
import type { ScanPool } from './scan-pool.js';
import type { JudgedFile, JudgePolicy } from './tasks.js';

export const BATCH_MAX = 16;

export type JudgeFailure = { failed: 'timeout' | 'crash' | 'cancelled'; message: string };

export interface JudgeJob {
  /** The daemon's descriptor of the file (the job's owner keeps it open until done()). */
  fd: number;
  /** Nobody wants the result any more (a change came, shutdown). */
  cancelled: boolean;
  /** Send this one alone: its batch failed once, so its next failure is its own. */
  solo?: boolean;
  /** Exactly once: the judgement, or a failure (its batch timed out or its worker died while it went alone). */
  done(result: JudgedFile | JudgeFailure): void;
  /** queued -> sent -> done; set by the queue. */
  state?: 'queued' | 'sent' | 'done';
  /** The uid it was first queued under (a failed batch requeues it there, at the front). */
  uid?: number;
  /** The inode's change sequence at its first event (GateEvent.seq): lets a worker conclude it (lane.cc). */
  seq?: number;
}

export class JudgeQueue {
  /** uid -> its queued jobs in arrival order; the Map's order is the round-robin turn. */
  private readonly queues = new Map<number, JudgeJob[]>();
  private running = 0;
  private closed = false;
  /** Jobs queued and not yet sent or done (each counted once, however many uids want it). */
  private waitingJobs = 0;
  /** A pump is due at the end of this turn (submit): one per turn, whatever was submitted in it. */
  private pumpDue = false;
  /** Batches and files sent so far (status; bench/cold prints files per batch). */
  private sentBatches = 0;
  private sentFiles = 0;

  constructor(
    private readonly pool: Pick<ScanPool, 'judge'>,
    /** Batches in flight at once: the pool's worker count. */
    private readonly slots: number,
    /** The stack of the moment (it may change between batches: a reload). */
    private readonly policy: () => JudgePolicy,
    private readonly batchMax = BATCH_MAX,
    /** The gate and stack epoch workers conclude plain allows with (native/fanotify/lane.cc); undefined: none. */
    private readonly lane: () => { gate: number; epoch: number } | undefined = () => undefined,
  ) {}

  /** Files waiting for a worker, batches in flight, and batches and files sent so far (status). */
  stats(): { waiting: number; batches: number; sentBatches: number; sentFiles: number } {
    return { waiting: this.waitingJobs, batches: this.running, sentBatches: this.sentBatches, sentFiles: this.sentFiles };
  }

  /** Jobs waiting, per uid (status). A job wanted by two uids counts twice. */
  queued(): Record<string, number> {
    return Object.fromEntries([...this.queues].map(([uid, q]) => [String(uid), q.filter((j) => j.state === 'queued').length]));
  }

  submit(job: JudgeJob, uid: number): void {
    if (this.closed) return void job.done({ failed: 'cancelled', message: 'the daemon is stopping' });
    job.state = 'queued';
    job.uid = uid;
    this.waitingJobs++;
    this.push(uid, job);
    if (this.pumpDue) return;
    this.pumpDue = true;
    queueMicrotask(() => {
      this.pumpDue = false;
      this.pump();
    });
  }

  /** Another uid waits for this job too: it may go at that uid's turn. */
  alsoFor(job: JudgeJob, uid: number): void {
    if (job.state === 'queued' && uid !== job.uid) this.push(uid, job);
  }

  /** Shutdown: every queued job is done (cancelled) now; batches in flight end with the pool. */
  close(): void {
    this.closed = true;
    for (const q of this.queues.values()) for (const j of q) this.finish(j, { failed: 'cancelled', message: 'the daemon is stopping' });
    this.queues.clear();
  }

  private push(uid: number, job: JudgeJob, front = false) {
    let q = this.queues.get(uid);
    if (!q) this.queues.set(uid, (q = []));
    if (front) q.unshift(job);
    else q.push(job);
  }

  private finish(job: JudgeJob, result: JudgedFile | JudgeFailure) {
    if (job.state === 'done') return;
    if (job.state === 'queued') this.waitingJobs--;
    job.state = 'done';
    try {
      job.done(result);
    } catch {
      // The owner's bug (cold.ts answers its waiters itself when it fails): the other jobs of the batch go on.
    }
  }

  private pump() {
    while (this.running < this.slots && !this.closed) {
      const batch = this.take();
      if (batch.length === 0) return;
      this.running++;
      this.sentBatches++;
      this.sentFiles += batch.length;
      // Read with the policy, in the same turn: the epoch says which stack the batch is judged with.
      const policy = this.policy();
      const lane = this.lane();
      const seqs = lane && batch.every((j) => j.seq !== undefined) ? batch.map((j) => j.seq!) : undefined;
      this.pool.judge(batch.map((j) => j.fd), policy, lane && seqs ? { ...lane, seqs } : undefined).then(
        (r) => this.deliver(batch, r),
        (err: unknown) => this.deliver(batch, { failed: 'crash', message: (err as Error)?.message ?? String(err) }),
      );
    }
  }

  /** The next batch: one job per uid per turn, a uid with more goes to the back of the turn. */
  private take(): JudgeJob[] {
    const batch: JudgeJob[] = [];
    while (batch.length < this.batchMax && this.queues.size > 0) {
      const [uid, q] = this.queues.entries().next().value as [number, JudgeJob[]];
      this.queues.delete(uid);
      let job: JudgeJob | undefined;
      while (q.length > 0 && job === undefined) {
        const j = q.shift()!;
        if (j.state !== 'queued') continue; // sent at another uid's turn, or done
        if (j.cancelled) this.finish(j, { failed: 'cancelled', message: 'no longer wanted' });
        else job = j;
      }
      if (job?.solo && batch.length > 0) {
        q.unshift(job); // goes alone, in the next batch
        job = undefined;
        this.queues.set(uid, q);
        break;
      }
      if (q.length > 0) this.queues.set(uid, q);
      if (!job) continue;
      job.state = 'sent';
      this.waitingJobs--;
      batch.push(job);
      if (job.solo) break;
    }
    return batch;
  }

  private deliver(batch: JudgeJob[], r: Awaited<ReturnType<ScanPool['judge']>>) {
    this.running--;
    if ('failed' in r) {
      if (batch.length === 1) this.finish(batch[0]!, r);
      else {
        // A batch that timed out or lost its worker: which file did it is unknown, so each goes again alone (its
        // tags make a file already judged cheap), and a second failure is that file's own.
        for (let i = batch.length - 1; i >= 0; i--) {
          const job = batch[i]!;
          if (job.cancelled || this.closed) this.finish(job, { failed: 'cancelled', message: r.message });
          else {
            job.solo = true;
            job.state = 'queued';
            this.waitingJobs++;
            this.push(job.uid ?? 0, job, true);
          }
        }
      }
    } else {
      batch.forEach((job, i) => {
        const file = r.files[i];
        this.finish(job, file ?? { failed: 'crash', message: 'the worker returned no judgement for this file' });
      });
    }
    this.pump();
  }
}
