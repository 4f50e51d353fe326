// One scan of one file by a loaded actor, inside a worker, as a structured result: the answer, or a failure whose
// kind the main thread's failure policy understands ('load', 'crash', 'timeout', 'too-large'). Never throws.
import { isAnswerKind } from '../policy/answer.js';
import type { ActorInstance } from './actor.js';
import { isContentPass, type DigestSink } from './content-pass.js';
import { fdScanFile, type ScanFileInit } from './scan-file.js';
import type { ScanResult, WorkerFailure, WorkerResult } from './tasks.js';

export function failure(code: WorkerFailure['error']['code'], message: string, err?: unknown): WorkerFailure {
  const actorCode = (err as { code?: unknown } | undefined)?.code;
  return { error: { code, message, ...(typeof actorCode === 'string' ? { actorCode } : {}) } };
}

/**
 * An actor's own deadline (e.g. exec's program timeout) counts as a timeout, and its own size limit (e.g. clamd's
 * StreamMaxLength) as too-large, by the `*_TIMEOUT` / `*_TOO_LARGE` code convention; anything else is a crash.
 */
function failureKind(err: unknown): 'timeout' | 'too-large' | 'crash' {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return 'crash';
  if (code.endsWith('_TIMEOUT')) return 'timeout';
  if (code.endsWith('_TOO_LARGE')) return 'too-large';
  return 'crash';
}

/** The actor's helper processes, sent with every result so the daemon exempts them before they read. */
export function withHelpers<T extends WorkerResult>(instance: ActorInstance, result: T): T {
  if (!instance.helperPids) return result;
  try {
    const pids = instance.helperPids();
    if (pids.length > 0) (result as { helperPids?: number[] }).helperPids = [...pids];
  } catch {
    /* an actor that cannot tell just gets no exemption */
  }
  return result;
}

/**
 * One scan by a loaded actor: its answer, or a structured failure (never a throw). With `digest`, a content-pass
 * actor (content-pass.ts) also leaves the content's SHA-256 there, taken in the scan's own read; others leave it.
 */
export async function scanWith(name: string, instance: ActorInstance, init: ScanFileInit, digest?: DigestSink): Promise<ScanResult | WorkerFailure> {
  const file = fdScanFile(init);
  const started = performance.now();
  let answer;
  try {
    if (digest && isContentPass(instance)) {
      const r = await instance.scanDigesting(file, digest.sha256);
      answer = r.answer;
      digest.digested = r.digested;
    } else answer = await instance.scan(file);
  } catch (err) {
    const message = `${name}: ${err instanceof Error ? err.message : String(err)}`;
    return withHelpers(instance, failure(failureKind(err), message, err));
  }
  const ms = performance.now() - started;
  if (!answer || !isAnswerKind(answer.answer) || (answer.reason !== undefined && typeof answer.reason !== 'string')) {
    return failure('crash', `${name}: scan() returned ${JSON.stringify(answer)}, not an Answer`);
  }
  const result: ScanResult = { answer: answer.answer, generation: instance.generation, ms };
  // A deny must say why; an actor that forgets still denies, under its own name.
  const reason = answer.reason ?? (answer.answer === 'deny' ? name : undefined);
  if (reason !== undefined) result.reason = reason;
  return withHelpers(instance, result);
}
