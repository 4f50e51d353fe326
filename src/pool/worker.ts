// The Piscina worker entry: one task = one (file, actor) scan, a batch of files judged end to end (judge-batch.ts),
// or loading an actor to learn its generation.
// Never throws to Piscina for actor problems: those come back as structured failures, so that the main thread can
// tell a broken actor ('load', 'crash') from a dead worker (which Piscina reports by rejecting).
// The scanned fd belongs to the daemon and is shared by all threads: nothing here closes it.
import { BroadcastChannel, threadId, workerData } from 'node:worker_threads';
import { native } from '../gate/addon.js';
import { loadActor, onFirstLoad, retireAll, retireExcept } from './load-actor.js';
import { failure, scanWith, withHelpers } from './actor-scan.js';
import { judgeBatch } from './judge-batch.js';
import { scanWithDigest } from './pass-digest.js';
import { attachLane, laneEpoch, type LaneAnnounce } from './lane-worker.js';
import { scanShared } from '../fleet/scan-shared.js';
import { SLOT_BEGUN, SLOT_GROUPS, SLOT_GROUPS_AT, SLOT_PICKED, type LoadResult, type WorkerResult, type WorkerTask } from './tasks.js';

// The pool's close asks every worker on its channel to retire its actors (their close() hooks) before it destroys
// the threads; a channel, not a task, because Piscina cannot address one task to each worker. A worker says that
// it holds actors once it loaded one (the pool then waits for its answer at close; a fresh replacement holds
// none): on the channel at once, and on its next result, so that the pool knows before its caller can close it
// (the two ways are not ordered with each other). The channel must not keep a worker alive: unref'd.
const retireChannelName = (workerData as { retireChannel?: unknown } | undefined)?.retireChannel;
const lanePool = (workerData as { lanePool?: unknown } | undefined)?.lanePool;
const channel = typeof retireChannelName === 'string' ? new BroadcastChannel(retireChannelName) : undefined;
// Named so that /proc/<pid>/task/*/comm, top, perf and bench/cold tell the pool's threads from node's own.
native.setThreadName('blessd-pool');
let holding = false;
let announced = false;
if (channel) {
  channel.onmessage = (ev) => {
    const lane = ((ev as MessageEvent).data as { lane?: LaneAnnounce } | null)?.lane;
    if (lane) return laneEpoch(lane); // the policy of a new lane epoch (ScanPool.announceLane)
    const keep = ((ev as MessageEvent).data as { keep?: unknown } | null)?.keep;
    if (Array.isArray(keep)) {
      // A reload: the scanners the stack dropped close here (a close() that throws is the actor's own business).
      void retireExcept(new Set(keep as string[])).catch(() => {});
      return;
    }
    if ((ev as MessageEvent).data !== 'retire') return;
    retireAll().then(
      (instances) => channel.postMessage({ retired: threadId, instances }),
      () => channel.postMessage({ retired: threadId, instances: 0 }),
    );
  };
  channel.unref(); // after onmessage, which refs it again
}
// The native cold lane (lane-worker.ts): the reader thread wakes this worker for cold files queued natively.
if (channel && typeof lanePool === 'number') {
  attachLane(lanePool, {
    helpers: (helperPids) => channel.postMessage({ helperPids }),
    books: (laneBooks) => channel.postMessage({ laneBooks }),
  });
}
onFirstLoad(() => {
  holding = true;
  channel?.postMessage({ holding: threadId }); // for a close that comes while this very task still runs
});

export default async function run(task: WorkerTask): Promise<WorkerResult> {
  const result = await runTask(task);
  if (holding && !announced) {
    announced = true;
    (result as { holder?: number }).holder = threadId;
  }
  return result;
}

async function runTask(task: WorkerTask): Promise<WorkerResult> {
  if (task.op === 'judge') return judgeBatch(task);
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

  // A worker that could not load the expected generation (the data changed on disk since the last reload, or an
  // actor whose generation follows a server, like clamd's VERSION, that is down) scans with what it has: the
  // result carries that generation, and failing every scan until a reload would be worse.
  times[SLOT_BEGUN] = Date.now();
  const init = { ...task.file, chunkSize: task.chunkSize, groups: new Int32Array(task.started, SLOT_GROUPS_AT, SLOT_GROUPS), marker: task.marker };
  // Asked for (the scan path, src/daemon/digest-round.ts): a content pass returns the digest it reads anyway.
  const scan = () => (task.digest ? scanWithDigest(task.entry.name, instance, init) : scanWith(task.entry.name, instance, init));
  // The fleet store: another host's answer instead of the scan, or this scan's answer shared (src/fleet/share.ts).
  return task.fleet ? scanShared(task.entry.name, task.file, task.fleet, instance.generation, scan) : scan();
}
