// The Piscina worker entry: one task = one (file, actor) scan, or loading an actor to learn its generation.
// Never throws to Piscina for actor problems: those come back as structured failures, so that the main thread can
// tell a broken actor ('load', 'crash') from a dead worker (which Piscina reports by rejecting).
// The scanned fd belongs to the daemon and is shared by all threads: nothing here closes it.
import { isAnswerKind } from '../policy/answer.js';
import type { ActorInstance } from './actor.js';
import { loadActor } from './load-actor.js';
import { fdScanFile } from './scan-file.js';
import { SLOT_BEGUN, SLOT_GROUPS, SLOT_GROUPS_AT, SLOT_PICKED, type LoadResult, type ScanResult, type WorkerFailure, type WorkerResult, type WorkerTask } from './tasks.js';

function failure(code: WorkerFailure['error']['code'], message: string, err?: unknown): WorkerFailure {
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
function withHelpers<T extends WorkerResult>(instance: ActorInstance, result: T): T {
  if (!instance.helperPids) return result;
  try {
    const pids = instance.helperPids();
    if (pids.length > 0) (result as { helperPids?: number[] }).helperPids = [...pids];
  } catch {
    /* an actor that cannot tell just gets no exemption */
  }
  return result;
}

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  // A load's deadline counts the load; a scan's counts from the scan (an actor loading its databases in a fresh
  // worker is not the file's fault).
  const times = new Float64Array(task.started, 0, 2);
  times[SLOT_PICKED] = Date.now();
  if (task.op === 'load') times[SLOT_BEGUN] = times[SLOT_PICKED]!;
  let loaded;
  try {
    loaded = await loadActor(task.entry, { fresh: task.op === 'load' && task.fresh === true });
  } catch (err) {
    return failure('load', (err as Error).message, err);
  }
  const { module, instance } = loaded;
  if (task.op === 'load') {
    let generation = instance.generation;
    if (instance.currentGeneration) {
      try {
        generation = await instance.currentGeneration();
      } catch (err) {
        return failure('load', `${task.entry.name}: currentGeneration(): ${(err as Error).message}`, err);
      }
    }
    const result: LoadResult = { generation, warnings: [...(instance.warnings ?? [])], manifest: { ...module.manifest } };
    if (instance.generationRefreshMs !== undefined) result.generationRefreshMs = instance.generationRefreshMs;
    return withHelpers(instance, result);
  }

  const { name } = task.entry;
  // A worker that could not load the expected generation (the data changed on disk since the last reload, or an
  // actor whose generation follows a server, like clamd's VERSION, that is down) scans with what it has: the
  // result carries that generation, and failing every scan until a reload would be worse.
  const file = fdScanFile({ ...task.file, chunkSize: task.chunkSize, groups: new Int32Array(task.started, SLOT_GROUPS_AT, SLOT_GROUPS), marker: task.marker });
  times[SLOT_BEGUN] = Date.now();
  const started = performance.now();
  let answer;
  try {
    answer = await instance.scan(file);
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
