// What a verdict does, for both lives of an inode (the cold path in cold.ts, the XState machine in machine.ts): cache
// it where it may be cached (ignore mark, native verdict table), answer every waiter, log a deny, tell subscribers.
import type { JudgedStamp } from '../gate/types.js';
import type { InodeServices, StackVerdict, Waiter } from './services.js';

export interface Verdicted {
  services: InodeServices;
  fd: number;
  path: string;
  waiting: Waiter[];
  verdict?: StackVerdict;
  /** Scanners whose answer stands in for a failure (a timeout, a crash...). */
  transient: string[];
  /** What the judgement saw: the allow is cached only if the file is still so. */
  judged?: JudgedStamp;
}

const accessorsOf = (c: Verdicted): number[] => [...new Set(c.waiting.map((w) => w.pid))];

/**
 * Whether the verdict may outlive the accesses it answers (ignore mark, native verdict table). Not when it rests on
 * a failure answer (a timeout, a crash...): a deny stands only if a real answer decided it; an allow only if no
 * failure took part at all.
 */
export const cacheable = (ctx: Pick<Verdicted, 'transient' | 'verdict'>): boolean => {
  if (ctx.transient.length === 0) return true;
  const by = ctx.verdict?.decidedBy;
  return ctx.verdict?.verdict === 'deny' && by !== undefined && !ctx.transient.includes(by);
};

// A verdict that rests on a failure answers its waiters and nothing more: the next access judges again.
// `inWorker`: a pool worker concluded it already (native/fanotify/lane.cc) — blessed, and these events answered.
export function concludeAllow(c: Verdicted, inWorker?: ReadonlySet<number>): void {
  const keep = cacheable(c);
  if (keep && !inWorker) c.services.bless(c.fd, c.judged);
  for (const w of c.waiting) {
    if (inWorker?.has(w.id)) c.services.answeredInWorker?.(w);
    else c.services.answer(w, 'allow');
  }
  c.services.notify('verdict', { fd: c.fd, path: c.path, verdict: 'allow', decidedBy: c.verdict?.decidedBy, accessors: accessorsOf(c), ...(keep ? {} : { transient: true }) });
}

export function concludeDeny(c: Verdicted): void {
  const keep = cacheable(c);
  if (keep) c.services.condemn(c.fd);
  // A deny that rests on a failure (a timeout, a crash, a scanner out of reach) says nothing of the content: fail
  // closed with the retryable errno (gate.retryErrno), as a deadline does; a scanner's own deny is the deny errno.
  for (const w of c.waiting) c.services.answer(w, keep ? 'deny' : 'busy');
  c.services.logDenied({ path: c.path, decidedBy: c.verdict?.decidedBy, reason: c.verdict?.reason, waiters: c.waiting });
  c.services.notify('verdict', { fd: c.fd, path: c.path, verdict: 'deny', decidedBy: c.verdict?.decidedBy, reason: c.verdict?.reason, accessors: accessorsOf(c), ...(keep ? {} : { transient: true }) });
}
