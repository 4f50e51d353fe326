// Overview — the common life of an unjudged file, without an XState actor: queued for judgement, judged in one pool
// task (judge-batch.ts: tags, leases, scans and result tags in the worker), verdict. A plain object with a list of
// waiters, because that is all the common path needs, and the profile said an actor per file was the largest cost
// left on the main thread (docs/bench.md). Anything unusual is not handled here: a change of the file hands the
// waiters over to a full inode machine (machine.ts, born dirty), and stacks with observe or remote entries, the
// crawl, content stamps and changed files start as machines.
//
// Owns its descriptor: closed once the verdict is given (or the judgement handed over) and the pool is done with
// it. Every waiter it holds is answered: at the verdict, by the machine it is handed to, or by the gate at shutdown.
// It must not: decide anything the stack did not (the verdict is the stack's, from the worker's answers), or cache
// a verdict that rests on a failure (conclude.ts).
import { readlinkQuiet } from '../daemon/fs-quiet.js';
import type { JudgedStamp } from '../gate/types.js';
import type { Answer } from '../policy/answer.js';
import type { JudgeFailure, JudgeJob } from '../pool/judge-queue.js';
import type { JudgedFile } from '../pool/tasks.js';
import { concludeAllow, concludeDeny } from './conclude.js';
import type { InodeServices, StackVerdict, Waiter } from './services.js';

export type ColdEnd = 'blessed' | 'denied' | 'error';

export class ColdInode {
  readonly waiting: Waiter[] = [];
  path: string;
  private answers = new Map<string, Answer>();
  private transient: string[] = [];
  /** What the worker's judgement saw (JudgedFile.judged). */
  private judged: JudgedStamp | undefined;
  private job: JudgeJob;
  /** The pool may still read the descriptor until the job is done. */
  private jobDone = false;
  private concluded = false;
  private ended = false;
  private handedOver = false;
  private closed = false;
  private slowLeft = 0;
  private retried = false;
  /** Seen by the main thread's slow-path scans (scan-service.ts): a plain flag. */
  private readonly cancel = { aborted: false };

  constructor(
    private readonly services: InodeServices,
    /** The daemon's own read-only descriptor of the file. */
    readonly fd: number,
    private readonly uid: number,
    private readonly end: (state: ColdEnd) => void,
    first?: Waiter,
    /** The inode's change sequence at its first event (GateEvent.seq): a worker may conclude it (lane.cc). */
    private readonly seq?: number,
  ) {
    this.path = `fd:${fd}`;
    if (first) this.waiting.push(first);
    this.job = this.submit(false);
  }

  /** For status. */
  get state(): string {
    return this.slowLeft > 0 ? 'scanning' : 'judging';
  }

  access(w: Waiter): void {
    this.waiting.push(w);
    if (w.uid !== undefined && w.uid !== this.uid) this.services.judgeAlsoFor(this.job, w.uid);
  }

  /** A change came: the waiters go to a machine (born dirty); whatever the pool still says is ignored. */
  handOver(): Waiter[] {
    this.stop();
    return this.waiting.splice(0);
  }

  /** Shutdown, or handed over: no verdict from here; the descriptor closes once the pool lets go of it. */
  stop(): void {
    this.handedOver = true;
    this.job.cancelled = true;
    this.cancel.aborted = true;
    this.closeWhenFree();
  }

  private submit(solo: boolean): JudgeJob {
    const job: JudgeJob = { fd: this.fd, cancelled: false, solo, done: (r) => this.onJudged(job, r), ...(this.seq !== undefined && { seq: this.seq }) };
    this.jobDone = false;
    this.services.judge(job, this.uid);
    return job;
  }

  private onJudged(job: JudgeJob, r: JudgedFile | JudgeFailure) {
    if (job !== this.job) return;
    this.jobDone = true;
    if (this.handedOver) return this.closeWhenFree();
    this.guarded(() => {
      if ('failed' in r) return this.onFailed(r);
      this.path = r.path;
      this.services.judged(r);
      this.answers = new Map(r.answers);
      this.transient = r.transient;
      this.judged = r.judged;
      if (r.concluded) return this.concludedInWorker(r.concluded);
      for (const name of r.slow) this.scanSlowly(name);
      this.decide();
    });
  }

  /**
   * A bug here must not leave the waiters to the deadline: they get what the deadline would answer, now, and the
   * judgement ends (as a machine that fails does, registry.ts).
   */
  private guarded(step: () => void) {
    try {
      step();
    } catch (err) {
      // Whoever is still listed may not have been answered (a second answer to one event is refused harmlessly).
      for (const w of this.waiting.splice(0)) {
        try {
          this.services.answer(w, 'fallback');
        } catch {
          /* the gate's deadline answers it */
        }
      }
      if (this.ended) return;
      this.concluded = true;
      this.cancel.aborted = true;
      this.services.notify('verdict', { fd: this.fd, path: this.path, verdict: 'error', error: String(err) });
      this.closeWhenFree();
      this.ended = true;
      this.end('error');
    }
  }

  /** The file's batch failed while it went alone (its scan timed out, its worker died): the entries' policies say. */
  private onFailed(r: JudgeFailure) {
    if (r.failed === 'cancelled') {
      // The queue closed under it (shutdown): the gate answers the waiters as it closes.
      this.handedOver = true;
      return this.closeWhenFree();
    }
    // No judgement came back, so no path either: logs and notices name the file all the same (display only).
    this.path = readlinkQuiet(`/proc/self/fd/${this.fd}`) ?? this.path;
    // The worker that held this file's leases is gone with its tokens: give them back here, or the file would look
    // busy (and every later reader wait) until the lease expires.
    this.services.releaseLeases(this.fd, this.services.needed(this.services.readAnswersNow(this.fd)));
    this.judged = this.services.stampOf(this.fd);
    const answers = this.services.readAnswersNow(this.fd);
    for (const name of this.services.needed(answers)) {
      const res = this.services.failureAnswer(name, r.failed, r.message, this.retried);
      if (res === undefined) {
        // The entry says retry: once, the whole file alone again.
        this.retried = true;
        this.job = this.submit(true);
        return;
      }
      answers.set(name, res.answer);
      if (res.transient) this.transient.push(name);
    }
    this.answers = answers;
    this.decide();
  }

  /** What the worker left to the main thread (a foreign lease, content changed under the scan): scan-service. */
  private scanSlowly(name: string) {
    this.slowLeft++;
    this.services.scan(this.fd, name, this.cancel, false, this.uid).then(
      (res) => {
        this.slowLeft--;
        if (this.cancel.aborted || this.concluded) return;
        this.guarded(() => {
          this.answers.set(res.name, res.answer);
          this.transient = this.transient.filter((n) => n !== name);
          if (res.transient) this.transient.push(name);
          this.decide();
        });
      },
      (err: Error) => {
        this.slowLeft--;
        if (this.cancel.aborted || this.concluded) return;
        this.guarded(() => {
          // A scanner that broke outside its failure policy counts as a deny: fail closed.
          this.answers.set(name, { answer: 'deny', reason: `scanner failed: ${err?.message ?? String(err)}` });
          if (!this.transient.includes(name)) this.transient.push(name);
          this.decide();
        });
      },
    );
  }

  /**
   * The worker concluded it allow (native/fanotify/lane.cc): blessed, and the events it lists answered. What is left
   * here is the books (costs, notices) and the waiters it could not answer (their events reached JS after it).
   */
  private concludedInWorker(answered: number[]) {
    this.concluded = true;
    this.cancel.aborted = true;
    const verdict: StackVerdict = this.services.evaluate(this.answers);
    const c = { services: this.services, fd: this.fd, path: this.path, waiting: this.waiting, verdict, transient: this.transient, judged: this.judged };
    concludeAllow(c, new Set(answered));
    this.waiting.length = 0;
    this.closeWhenFree();
    this.ended = true;
    this.end('blessed');
  }

  private decide() {
    if (this.concluded) return;
    let verdict: StackVerdict = this.services.evaluate(this.answers);
    if (verdict.verdict === 'pending') {
      if (this.slowLeft > 0) return;
      verdict = { verdict: 'deny', reason: 'no scanner left that could decide', waitingFor: verdict.waitingFor };
    }
    this.concluded = true;
    this.cancel.aborted = true; // slow scans still running write their tags; their answers are not needed
    const c = { services: this.services, fd: this.fd, path: this.path, waiting: this.waiting, verdict, transient: this.transient, judged: this.judged };
    if (verdict.verdict === 'allow') concludeAllow(c);
    else concludeDeny(c);
    this.waiting.length = 0;
    this.closeWhenFree();
    this.ended = true;
    this.end(verdict.verdict === 'allow' ? 'blessed' : 'denied');
  }

  private closeWhenFree() {
    if (this.closed || !this.jobDone) return;
    this.closed = true;
    this.services.close(this.fd);
  }
}
