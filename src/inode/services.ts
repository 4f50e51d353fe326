// What an inode machine may ask of the daemon. The machine decides; these do the work (tags on disk, the scan
// pool, the gate's answers). Kept as one interface so the machine file reads as pure policy.
import type { JudgedStamp } from '../gate/types.js';
import type { Answer } from '../policy/answer.js';
import type { Cancelled } from '../pool/cancel.js';
import type { JudgeJob } from '../pool/judge-queue.js';
import type { JudgedFile } from '../pool/tasks.js';

export type AccessKind = 'open' | 'read' | 'exec';

export interface Waiter {
  id: number;
  pid: number;
  access: AccessKind;
  /** performance.now() when the event reached JavaScript: for the time-waited statistics. */
  since?: number;
  /** Whose access it is: each waiter's uid gets its turn in the fair queue, not only the first accessor's. */
  uid?: number;
}

export interface StackVerdict {
  verdict: 'allow' | 'deny' | 'pending';
  decidedBy?: string;
  reason?: string;
  waitingFor: string[];
}

export interface ScanResult {
  name: string;
  answer: Answer;
  /** Where the answer came from, for logs. */
  source: 'scan' | 'failure-policy' | 'busy-elsewhere';
  /**
   * The answer stands in for a failure (timeout, crash, load error, fd exhaustion, a file that kept changing): it
   * holds for the access it answers and nothing else — never written as a tag, never cached in the native table.
   */
  transient?: boolean;
}

export interface InodeServices {
  /** Answers of the stack's scanners that valid tags on the file already hold. */
  readAnswers(fd: number): Promise<Map<string, Answer>>;
  evaluate(answers: ReadonlyMap<string, Answer>): StackVerdict;
  /** Scanners whose answers could still change the verdict (never observe ones). */
  needed(answers: ReadonlyMap<string, Answer>): string[];
  /** Observe scanners without a valid tag: they scan but never gate. */
  observers(answers: ReadonlyMap<string, Answer>): string[];
  /** Start one scanner on the file (lease, scan, conditional tag write); resolves with its answer. */
  scan(fd: number, name: string, signal: Cancelled, background?: boolean, uid?: number): Promise<ScanResult>;
  /** Dirty: remove every scanned-by tag. Returns the names removed. */
  clearTags(fd: number): string[];
  /** 'busy': EAGAIN (nfsd); 'fallback': what the gate's deadline would answer (the machine failed). */
  answer(waiter: Waiter, verdict: 'allow' | 'deny' | 'busy' | 'fallback'): void;
  /** A pool worker answered this waiter allow (native/fanotify/lane.cc): only the books (time waited). */
  answeredInWorker?(waiter: Waiter): void;
  /**
   * Cache an allow (ignore mark, native table). `judged`: what the judgement saw; the bless then lands only if the
   * file is still so (a verdict on content that is gone must not silence the new).
   */
  bless(fd: number, judged?: JudgedStamp): void;
  /** The file's size, mtime and ctime now; undefined if they cannot be read. */
  stampOf(fd: number): JudgedStamp | undefined;
  condemn(fd: number): void;
  forget(fd: number): void;
  /**
   * A file went from (partly) scanned to dirty, or got a verdict. `detail.fd` (the machine's) identifies the file for
   * subscribers; `detail.accessors` (pids that waited for a verdict) are for the cost table, never sent on.
   */
  notify(kind: 'dirty' | 'verdict', detail: Record<string, unknown>): void;
  logDenied(detail: { path: string; decidedBy?: string; reason?: string; waiters: Waiter[] }): void;
  /**
   * The cold path (cold.ts) serves this stack: no observe or remote entries, no content stamps. Else every file
   * gets a machine.
   */
  readonly coldPath: boolean;
  /** Queue a file to be judged end to end in the pool (judge-queue.ts), at this uid's turn. */
  judge(job: JudgeJob, uid: number): void;
  /** Another uid waits for this file too: its turn counts as well. */
  judgeAlsoFor(job: JudgeJob, uid: number): void;
  /** A cold judgement came back: counters, costs, tag-write warnings. */
  judged(file: JudgedFile): void;
  /** Remove this process's leases of these scanners on the file (their worker is gone); never throws. */
  releaseLeases(fd: number, names: string[]): void;
  /** Answers valid tags give now, plus the constant ones; never throws (no readable tags: the constants). */
  readAnswersNow(fd: number): Map<string, Answer>;
  /** What a failure of this scanner answers by its entry's policy; undefined: retry (once). */
  failureAnswer(name: string, failure: 'timeout' | 'crash', message: string, retried: boolean): { answer: Answer; transient: boolean } | undefined;
  close(fd: number): void;
  /** Readers of a file being written: wait for its rescan, or pass. */
  whileWriting: 'wait' | 'allow';
  rescanDebounceMs: number;
  /** pool.rescan: a written file is scanned again after its close ('onClose') or at its next read ('onRead'). */
  rescan: 'onClose' | 'onRead';
}
