// What a failed scan means for the verdict. Kept tiny on purpose: the policy (config) says, per kind of failure,
// which answer stands in for the actor's, or 'retry' (the caller scans once more; a second failure is a deny).
import type { Answer, AnswerKind } from '../policy/answer.js';
import type { ScanOutcome } from './scan-pool.js';

export type FailureAction = AnswerKind | 'retry';

export interface FailurePolicy {
  /** The actor failed to load or crashed. */
  onError: FailureAction;
  onTimeout: FailureAction;
  /** Retrying a too-large file cannot help: 'retry' here is taken as 'deny'. */
  onTooLarge: FailureAction;
}

/** Returned instead of an Answer when the caller should scan once more. */
export const RETRY = Symbol('blessd.retry');
export type Resolution = Answer | typeof RETRY;

export function resolveFailure(outcome: ScanOutcome, policy: FailurePolicy, opts: { retried?: boolean } = {}): Resolution {
  if (outcome.kind === 'answer') {
    return outcome.reason === undefined ? { answer: outcome.answer } : { answer: outcome.answer, reason: outcome.reason };
  }
  const action = outcome.code === 'timeout' ? policy.onTimeout : outcome.code === 'too-large' ? policy.onTooLarge : policy.onError;
  const reason = `${outcome.code}: ${outcome.message}`;
  if (action === 'retry') {
    // Once only, and never for size: the same file will be just as large the second time.
    if (opts.retried || outcome.code === 'too-large') return { answer: 'deny', reason: `${reason} (no retry left)` };
    return RETRY;
  }
  return { answer: action, reason };
}
