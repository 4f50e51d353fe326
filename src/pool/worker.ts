// The Piscina worker entry: one task = one (file, actor) scan, or loading an actor to learn its generation.
// Never throws to Piscina for actor problems: those come back as structured failures, so that the main thread can
// tell a broken actor ('load', 'crash') from a dead worker (which Piscina reports by rejecting).
// The scanned fd belongs to the daemon and is shared by all threads: nothing here closes it.
import { isAnswerKind } from '../policy/answer.js';
import { loadActor } from './load-actor.js';
import { fdScanFile } from './scan-file.js';
import type { LoadResult, ScanResult, WorkerFailure, WorkerResult, WorkerTask } from './tasks.js';

function failure(code: WorkerFailure['error']['code'], message: string, err?: unknown): WorkerFailure {
  const actorCode = (err as { code?: unknown } | undefined)?.code;
  return { error: { code, message, ...(typeof actorCode === 'string' ? { actorCode } : {}) } };
}

/** An actor's own deadline (e.g. exec's program timeout) counts as a timeout, by the `*_TIMEOUT` code convention. */
function isTimeoutError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code.endsWith('_TIMEOUT');
}

const short = (g: string) => (g.length > 16 ? `${g.slice(0, 12)}…` : g);

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  // A load's deadline counts the load; a scan's counts from the scan (an actor loading its databases in a fresh
  // worker is not the file's fault).
  if (task.op === 'load') new Float64Array(task.started)[0] = Date.now();
  let loaded;
  try {
    loaded = await loadActor(task.entry, { fresh: task.op === 'load' && task.fresh === true });
  } catch (err) {
    return failure('load', (err as Error).message, err);
  }
  const { module, instance } = loaded;
  if (task.op === 'load') {
    const result: LoadResult = { generation: instance.generation, warnings: [...(instance.warnings ?? [])], manifest: { ...module.manifest } };
    return result;
  }

  const { name } = task.entry;
  const expected = task.entry.generation;
  if (expected !== undefined && instance.generation !== expected) {
    // The daemon judges with generation `expected`, but the disk no longer holds it (changed since the last
    // reload, and this worker had not loaded it before). Scanning with other content under the old generation
    // would mislabel the tag: fail, loudly, and let the entry's onError answer.
    return failure('load', `${name}: its data changed on disk since blessd last loaded it (generation ${short(instance.generation)}, expected ${short(expected)}): run \`blessctl reload\``);
  }
  const file = fdScanFile({ ...task.file, chunkSize: task.chunkSize });
  new Float64Array(task.started)[0] = Date.now();
  const started = performance.now();
  let answer;
  try {
    answer = await instance.scan(file);
  } catch (err) {
    const message = `${name}: ${err instanceof Error ? err.message : String(err)}`;
    return failure(isTimeoutError(err) ? 'timeout' : 'crash', message, err);
  }
  const ms = performance.now() - started;
  if (!answer || !isAnswerKind(answer.answer) || (answer.reason !== undefined && typeof answer.reason !== 'string')) {
    return failure('crash', `${name}: scan() returned ${JSON.stringify(answer)}, not an Answer`);
  }
  const result: ScanResult = { answer: answer.answer, generation: instance.generation, ms };
  // A deny must say why; an actor that forgets still denies, under its own name.
  const reason = answer.reason ?? (answer.answer === 'deny' ? name : undefined);
  if (reason !== undefined) result.reason = reason;
  return result;
}
