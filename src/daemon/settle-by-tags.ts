// The fast path for a file nobody is working on: when its tags alone settle the verdict (a restart, a reload, an
// evicted ignore mark), answer and cache it now — no machine, no scan. It must not start work: a file its tags do
// not settle goes to an inode machine (the caller's business).
import type { Waiter } from '../inode/services.js';
import type { Answer } from '../policy/answer.js';
import { evaluate } from '../policy/stack.js';
import { readlinkQuiet } from './fs-quiet.js';
import type { DaemonParts } from './parts.js';

export class TagSettler {
  constructor(private readonly d: DaemonParts) {}

  /**
   * The native reader denied an access from this file's tags (and answered it): the log line, the count and the
   * notice a deny gets, with the scanner and reason read back from the tags.
   */
  logDenied(fd: number, accessor: Waiter) {
    const d = this.d;
    let v: { decidedBy?: string; reason?: string } = {};
    try {
      v = evaluate(d.stack.stack, d.stack.answersOf(d.tags.readSync(fd, d.stack.generations)));
    } catch {
      /* the tags changed meanwhile: the deny stands, the reason is unknown */
    }
    const path = readlinkQuiet(`/proc/self/fd/${fd}`) ?? `fd:${fd}`;
    d.counters.verdicts.deny++;
    d.svc.logDenied({ path, decidedBy: v.decidedBy, reason: v.reason ?? 'denied by its tags', waiters: [accessor] });
    d.svc.notify('verdict', { fd, path, verdict: 'deny', decidedBy: v.decidedBy, reason: v.reason, fromTags: true });
  }

  /** True if the tags settled the verdict (and the waiter, if any, was answered). Content mode needs a digest: not here. */
  settle(fd: number, waiter?: Waiter): boolean {
    const d = this.d;
    if (d.config.tags.stamp === 'content') return false;
    let answers: Map<string, Answer>;
    try {
      answers = d.stack.answersOf(d.tags.readSync(fd, d.stack.generations));
    } catch {
      return false; // no tags to read here: the machine will scan
    }
    const v = evaluate(d.stack.stack, answers);
    if (v.verdict === 'pending' || d.stack.observers(answers).length > 0) return false;
    const path = readlinkQuiet(`/proc/self/fd/${fd}`) ?? `fd:${fd}`;
    const svc = d.svc;
    if (v.verdict === 'allow') {
      svc.bless(fd);
      if (waiter) svc.answer(waiter, 'allow');
      d.counters.verdicts.allow++;
    } else {
      svc.condemn(fd);
      if (waiter) svc.answer(waiter, 'deny');
      d.counters.verdicts.deny++;
      svc.logDenied({ path, decidedBy: v.decidedBy, reason: v.reason, waiters: waiter ? [waiter] : [] });
    }
    svc.notify('verdict', { fd, path, verdict: v.verdict, decidedBy: v.decidedBy, reason: v.reason, fromTags: true });
    return true;
  }
}
