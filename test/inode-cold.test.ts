// The cold path on its own: the real registry, the real cold judgement (src/inode/cold.ts) and the real XState
// machine it hands over to, the real policy stack and failure policy — with InodeServices that do no I/O but
// record every request and let the test decide when each judgement or scan ends.
import type { JudgedStamp } from '../src/gate/types.js';
import test from 'ava';
import { closeSync, openSync } from 'node:fs';
import { InodeRegistry } from '../src/inode/registry.js';
import type { InodeServices, ScanResult, StackVerdict, Waiter } from '../src/inode/services.js';
import type { Answer } from '../src/policy/answer.js';
import { evaluate, neededScanners, type StackRule } from '../src/policy/stack.js';
import { resolveFailure, RETRY, type FailurePolicy } from '../src/pool/failure.js';
import type { JudgeFailure, JudgeJob } from '../src/pool/judge-queue.js';
import type { JudgedFile } from '../src/pool/tasks.js';
import { VerdictRecorder } from './helpers/recorder.js';

const STACK: StackRule[] = [
  { name: 'signature', control: 'required' },
  { name: 'default', control: 'required' },
];
const DEFAULT: [string, Answer] = ['default', { answer: 'allow', reason: 'default' }];

class Services extends VerdictRecorder implements InodeServices {
  readonly jobs: { job: JudgeJob; uid: number }[] = [];
  readonly also: [JudgeJob, number][] = [];
  readonly scans: { name: string; resolve: (r: ScanResult) => void }[] = [];
  whileWriting: 'wait' | 'allow' = 'wait';
  rescanDebounceMs = 1;
  rescan: 'onClose' | 'onRead' = 'onClose';
  coldPath = true;
  policy: FailurePolicy = { onError: 'deny', onTimeout: 'retry', onTooLarge: 'deny' };

  constructor(readonly stack: StackRule[] = STACK) {
    super();
  }

  judge(job: JudgeJob, uid: number) {
    this.jobs.push({ job, uid });
    this.record(`judge uid ${uid}${job.solo ? ' solo' : ''}`);
  }
  judgeAlsoFor(job: JudgeJob, uid: number) {
    this.also.push([job, uid]);
    this.record(`alsoFor ${uid}`);
  }
  judged() {
    this.record('judged');
  }
  releaseLeases(fd: number, names: string[]) {
    this.record(`release ${fd} ${names.join(',')}`);
  }
  readAnswersNow() {
    return new Map([DEFAULT]);
  }
  failureAnswer(name: string, failure: 'timeout' | 'crash', message: string, retried: boolean) {
    const r = resolveFailure({ kind: 'error', code: failure, message }, this.policy, { retried });
    return r === RETRY ? undefined : { answer: r, transient: true };
  }
  close(fd: number) {
    this.record(`close ${fd}`);
  }
  async readAnswers() {
    this.record('readAnswers');
    return new Map([DEFAULT]);
  }
  evaluate(answers: ReadonlyMap<string, Answer>): StackVerdict {
    return evaluate(this.stack, answers);
  }
  needed(answers: ReadonlyMap<string, Answer>) {
    return neededScanners(this.stack, answers);
  }
  observers() {
    return [];
  }
  scan(_fd: number, name: string): Promise<ScanResult> {
    return new Promise((resolve) => {
      this.scans.push({ name, resolve });
      this.record(`scan ${name}`);
    });
  }
  clearTags() {
    this.record('clearTags');
    return [];
  }
  failBless = false;
  override bless(fd?: number, judged?: JudgedStamp) {
    if (this.failBless) throw new Error('bless broke');
    super.bless(fd, judged);
  }
}

const reader = (id: number, uid = 1000): Waiter => ({ id, pid: 1000 + id, access: 'read', uid });
const judged = (answers: [string, Answer][], more: Partial<JudgedFile> = {}): JudgedFile => ({ path: '/x', answers, transient: [], slow: [], scans: [{ name: 'signature', ms: 1, totalMs: 2 }], uncounted: [], tagErrors: [], fromTags: false, ...more });
const done = (svc: Services, i: number, r: JudgedFile | JudgeFailure) => svc.jobs[i]!.job.done(r);

/** A real descriptor (the registry dups it when a machine takes over), closed at teardown. */
function fdFor(t: { teardown(fn: () => void): void }): number {
  const fd = openSync('/dev/null', 'r');
  t.teardown(() => {
    try {
      closeSync(fd);
    } catch {
      /* closed by the code under test */
    }
  });
  return fd;
}

test('a cold judgement holds the access that started it and every later one, answers all at the verdict and caches it', async (t) => {
  const svc = new Services();
  const settled: string[] = [];
  const registry = new InodeRegistry(svc, (key, state) => settled.push(`${key} ${state}`));
  t.true(registry.ensure('1:1', 7, { uid: 1000, waiter: reader(1) }));
  t.deepEqual(svc.jobs.map((j) => j.uid), [1000], 'one job, at the uid of its first access');
  t.true(registry.access('1:1', reader(2)));
  t.deepEqual(svc.answered, [], 'nothing answered before the verdict');
  t.deepEqual(registry.states(), { judging: 1 });
  const seen = { size: 4096n, mtimeNs: 7n, ctimeNs: 42n };
  done(svc, 0, { ...judged([DEFAULT, ['signature', { answer: 'ok' }]]), judged: seen });
  t.deepEqual(svc.answered, [[1, 'allow'], [2, 'allow']]);
  t.true(svc.calls.includes('bless'), 'cached: ignore mark and native table');
  t.deepEqual(svc.blessedAt, [seen], 'the bless carries what the worker judged: it lands only if the file is still so');
  t.true(svc.calls.includes('close 7'), 'its descriptor closed once the pool was done with it');
  t.false(registry.has('1:1'));
  t.deepEqual(settled, ['1:1 blessed']);
  t.false(registry.access('1:1', reader(3)), 'nothing judges it any more: the caller must start anew');
});

test('a change hands the waiters to a machine born dirty, and the cold result that arrives later is ignored', async (t) => {
  const svc = new Services();
  const registry = new InodeRegistry(svc);
  const fd = fdFor(t);
  registry.ensure('1:2', fd, { uid: 1000, waiter: reader(1) });
  registry.change('1:2', false);
  t.true(svc.calls.includes('clearTags'), 'the machine took over: dirty, tags cleared');
  t.deepEqual(svc.answered, [], 'the reader waits for the rescan (whileWriting: wait)');
  t.false(svc.calls.includes(`close ${fd}`), 'the pool may still read the cold descriptor: kept open');
  // The old content's judgement comes back: it must not decide anything.
  done(svc, 0, judged([DEFAULT, ['signature', { answer: 'deny', reason: 'old content' }]]));
  t.deepEqual(svc.answered, []);
  t.false(svc.calls.includes('condemn'));
  t.true(svc.calls.includes(`close ${fd}`), 'closed once the pool let go of it');
  registry.change('1:2', true);
  await svc.until(() => svc.scans.length === 1, 'the machine rescans after the close');
  svc.scans[0]!.resolve({ name: 'signature', answer: { answer: 'ok' }, source: 'scan' });
  await svc.until(() => svc.answered.length === 1, 'the verdict on the new content');
  t.deepEqual(svc.answered, [[1, 'allow']]);
});

test('a judgement whose batch failed is answered by the entry policy: retried once alone, then a failure answer that is never cached', async (t) => {
  const svc = new Services();
  const registry = new InodeRegistry(svc);
  registry.ensure('1:3', 8, { uid: 1000, waiter: reader(1) });
  done(svc, 0, { failed: 'timeout', message: 'no file of the batch judged within 5000 ms' });
  t.is(svc.jobs.length, 2, 'onTimeout: retry sends it once more');
  t.true(svc.calls.includes('release 8 signature'), `the dead worker's leases are given back before the retry (${svc.calls.join(', ')})`);
  t.true(svc.jobs[1]!.job.solo === true, 'alone, so that its failure is its own');
  t.deepEqual(svc.answered, []);
  done(svc, 1, { failed: 'timeout', message: 'again' });
  t.is(svc.jobs.length, 2, 'no second retry');
  t.deepEqual(svc.answered, [[1, 'busy']], 'fail closed, with the retryable errno');
  t.false(svc.calls.includes('condemn'), 'a failure is not a verdict: the next access judges again');
  t.false(registry.has('1:3'));
});

test('scanners the worker left to the main thread are scanned there, and their answers decide', async (t) => {
  const svc = new Services();
  const registry = new InodeRegistry(svc);
  registry.ensure('1:4', 9, { uid: 1000, waiter: reader(1) });
  done(svc, 0, judged([DEFAULT], { slow: ['signature'], scans: [] }));
  t.deepEqual(svc.scans.map((s) => s.name), ['signature']);
  t.deepEqual(svc.answered, [], 'pending until the slow scan answers');
  svc.scans[0]!.resolve({ name: 'signature', answer: { answer: 'deny', reason: 'found' }, source: 'scan' });
  await svc.until(() => svc.answered.length === 1, 'the verdict');
  t.deepEqual(svc.answered, [[1, 'deny']]);
  t.true(svc.calls.includes('condemn'));
});

test('every waiter of a cold judgement counts for its own uid, and asks for that uid\'s turn too', async (t) => {
  const svc = new Services();
  const registry = new InodeRegistry(svc);
  registry.ensure('1:5', 10, { uid: 1000, waiter: reader(1, 1000) });
  registry.access('1:5', reader(2, 2000));
  registry.access('1:5', reader(3, 2000));
  t.is(registry.liveOf(1000), 1);
  t.is(registry.liveOf(2000), 1, 'the victim waits for it too: counted once for its uid');
  t.deepEqual(svc.also.map(([, uid]) => uid), [2000, 2000]);
  done(svc, 0, judged([DEFAULT, ['signature', { answer: 'ok' }]]));
  t.is(registry.liveOf(1000), 0);
  t.is(registry.liveOf(2000), 0);
});

test('a bug while concluding answers every waiter at once with what the deadline would, and ends the judgement', async (t) => {
  const svc = new Services();
  const ended: string[] = [];
  const registry = new InodeRegistry(svc, (key, state) => ended.push(`${key} ${state}`));
  registry.ensure('1:6', 11, { uid: 1000, waiter: reader(1) });
  registry.access('1:6', reader(2));
  svc.failBless = true;
  t.notThrows(() => done(svc, 0, judged([DEFAULT, ['signature', { answer: 'ok' }]])));
  t.deepEqual(svc.answered, [[1, 'fallback'], [2, 'fallback']]);
  t.true(svc.calls.includes('notify verdict error'));
  t.deepEqual(ended, ['1:6 error']);
  t.false(registry.has('1:6'));
});
