// The scan pool: Piscina workers running scanner actors, one task per (file, actor), so the actors of a stack scan
// one file in parallel. The main thread only schedules and keeps deadlines: no scanning, no blocking here.
//
// Deadlines: every scan has one. When it passes, the task is aborted; Piscina then destroys the worker running it
// (the only way to stop `while (true) {}`), starts a fresh one, and the pool goes on. The deadline counts from the
// moment the scan starts in its worker (the actor loaded), never from the call: a file queued behind hung scans,
// or behind a fresh worker loading its databases, has not been given its time yet (the load is bounded on its own,
// by loadTimeoutMs). The worker stamps both moments into a shared slot of the task; the main thread's timer reads
// them and re-arms until the deadline has passed.
// The waiting opener is bounded by the gate's deadline, not by this one.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { AnswerKind } from '../policy/answer.js';
import type { ActorManifest } from './actor.js';
import { Cancel } from './cancel.js';
import { PoolError } from './errors.js';
import { policyRef } from './policy-wire.js';
import { Reaper } from './reaper.js';
import { GROUP_MARKER_ENV, SPAWNING } from './scan-file.js';
import { slotKey } from './slot-key.js';
import type { LaneBooks } from './lane-books.js';
import type { LaneAnnounce } from './lane-worker.js';
import { SLOT_BEGUN, SLOT_GROUPS, SLOT_GROUPS_AT, SLOT_PICKED, type JudgeLane, type JudgePolicy, type JudgeResult, type JudgeTask, type LoadResult, type LoadTask, type PoolEntry, type FileDigest, type ScanResult, type ScanTask, type WorkerFailure, type WorkerResult } from './tasks.js';

export type { PoolEntry } from './tasks.js';

export type ScanOutcome =
  | { kind: 'answer'; answer: AnswerKind; reason?: string; ms: number; generation: string; shared?: true; digest?: FileDigest }
  | { kind: 'error'; code: 'timeout' | 'crash' | 'too-large' | 'load'; message: string };

export interface ScanPoolOptions {
  /** Worker threads (all started at once and kept: each caches its loaded actors). */
  threads: number;
  /** Read size for actors that do not choose one (default 1 MiB). */
  chunkSize?: number;
  /** Deadline for loading an actor in describe()/generation() (default 60 s). */
  loadTimeoutMs?: number;
  /** How long close() waits for the workers to run their actors' close() hooks (default 2 s). */
  closeTimeoutMs?: number;
  /**
   * An actor reported helper processes (ActorInstance.helperPids): called as the result arrives, before anything
   * awaits it, so the daemon can exempt them before the worker's next task lets them read.
   */
  onHelperPids?: (entryName: string, pids: number[]) => void;
  /** A native lane batch's books (lane-books.ts): one message per batch, from the worker that ran it. */
  onLaneBooks?: (books: LaneBooks) => void;
  /**
   * A worker died with no task of its own in flight (a native lane batch runs outside any task): Piscina replaces
   * it and says so here. Without a listener, Piscina's 'error' event would end the whole process.
   */
  onWorkerError?: (err: Error) => void;
}

export interface ActorDescription {
  generation: string;
  warnings: string[];
  manifest: ActorManifest;
  /** The actor wants its generation asked again this often (ms): currentGeneration(). */
  generationRefreshMs?: number;
}

const WORKER_FILE = fileURLToPath(new URL('./worker.js', import.meta.url));

// Piscina loads the worker file with require() first. From Node 20.19 on, require() of an ES module works, but a
// worker terminated while inside it (a pool closed, or a scan cut off, while a fresh worker is still starting)
// aborts the WHOLE process on an assertion in node's module_wrap.cc (reproduced: close a pool with a hanging
// scan in flight, a few dozen times). With require(esm) switched off in the workers, Piscina's require fails
// cleanly and it falls back to import(), which a termination simply stops.
const NO_REQUIRE_ESM = '--no-experimental-require-module';
function workerExecArgv(): string[] {
  return process.allowedNodeEnvironmentFlags.has(NO_REQUIRE_ESM) ? [...process.execArgv, NO_REQUIRE_ESM] : process.execArgv;
}

/**
 * The slot a task shares with its worker (tasks.ts, TaskSlot): the worker stamps the start of the work (deadlines
 * count from there) and the process groups an actor started for it (killed here if the pool gives the task up).
 */
function startSlot(groups = SLOT_GROUPS): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOT_GROUPS_AT + 4 * Math.max(SLOT_GROUPS, groups));
}

/** How long a given-up task's slot is swept at worker exits. */
const GIVEN_UP_WATCH_MS = 30_000;

/** Kill every process group the task's actor registered and has not released: its worker is going, or gone. */
function killGroups(slot: SharedArrayBuffer, marker: string, reaper: Reaper): void {
  const groups = new Int32Array(slot, SLOT_GROUPS_AT);
  for (let i = 0; i < groups.length; i++) {
    const pgid = Atomics.load(groups, i);
    if (pgid === SPAWNING) {
      // Spawned, pid not registered yet (or never: its worker was stopped in between): find it by its marker. The
      // entry stays, for the next sweep.
      for (const g of groupsByMarker(marker)) killGroup(g, reaper);
    } else if (pgid > 1 && Atomics.compareExchange(groups, i, pgid, 0) === pgid) {
      killGroup(pgid, reaper);
    }
  }
}

/** The leader (pid = pgid, spawned detached) is our child, whose worker will not wait for it: the reaper does. */
function killGroup(pgid: number, reaper: Reaper) {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* gone already */
  }
  reaper.track(pgid);
}

/** Process groups of processes whose environment holds `BLESSD_SCAN_TASK=<marker>` (a scan of /proc: rare, on give-up only). */
function groupsByMarker(marker: string): Set<number> {
  const needle = Buffer.from(`\0${GROUP_MARKER_ENV}=${marker}\0`);
  const found = new Set<number>();
  for (const d of readdirSync('/proc')) {
    if (d.charCodeAt(0) < 48 || d.charCodeAt(0) > 57) continue;
    try {
      const env = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${d}/environ`)]);
      if (!env.includes(needle)) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
      const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgid > 1) found.add(pgid);
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return found;
}

/** The reason a task is cancelled at its deadline. */
const DEADLINE = Symbol('deadline');

let markers = 0;
const nextMarker = () => `${process.pid}.${++markers}`;
let pools = 0;

function isFailure(r: WorkerResult): r is WorkerFailure {
  return 'error' in r;
}

function positiveInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

export class ScanPool {
  private readonly piscina: Piscina<LoadTask | ScanTask | JudgeTask, WorkerResult>;
  private readonly chunkSize: number | undefined;
  private readonly loadTimeoutMs: number;
  private readonly threads: number;
  private readonly onHelperPids: ScanPoolOptions['onHelperPids'];
  private readonly onLaneBooks: ScanPoolOptions['onLaneBooks'];
  /** Every task in flight and its shared slot, so close() can cut them off and kill their process groups. */
  private readonly inFlight = new Map<Cancel, LoadTask | ScanTask | JudgeTask>();
  /**
   * Slots of tasks given up lately. Their groups are killed at once, and again whenever a worker exits: a worker
   * being destroyed may have spawned a program an instant before and registered it just after our first look.
   */
  private readonly givenUp = new Map<LoadTask | ScanTask | JudgeTask, number>();
  private readonly watched = new WeakSet<object>();
  /** Reaps the killed programs of given-up scans (reaper.ts). */
  readonly reaper = new Reaper();
  private closed = false;
  private readonly closeTimeoutMs: number;
  /** Where close() asks the workers to retire their actors (worker.ts). */
  private readonly retireChannel = `blessd-pool-retire.${process.pid}.${++pools}`;
  /** This pool in the native lane's worker registry (lane_queue.cc): its workers attach under it. */
  readonly lanePool = pools;
  /** The main side of it: workers answer the close here. Holders: workers that loaded an actor (thread ids). */
  private readonly channel: BroadcastChannel;
  private readonly holders = new Set<number>();
  private readonly retired = new Set<number>();
  private onRetired: (() => void) | undefined;

  constructor(options: ScanPoolOptions) {
    if (!positiveInteger(options?.threads)) throw new PoolError('POOL_OPTIONS', 'ScanPool: options.threads must be a positive integer');
    if (options.chunkSize !== undefined && !positiveInteger(options.chunkSize)) {
      throw new PoolError('POOL_OPTIONS', 'ScanPool: options.chunkSize must be a positive integer');
    }
    if (options.loadTimeoutMs !== undefined && !positiveInteger(options.loadTimeoutMs)) {
      throw new PoolError('POOL_OPTIONS', 'ScanPool: options.loadTimeoutMs must be a positive integer');
    }
    if (options.closeTimeoutMs !== undefined && !positiveInteger(options.closeTimeoutMs)) {
      throw new PoolError('POOL_OPTIONS', 'ScanPool: options.closeTimeoutMs must be a positive integer');
    }
    this.chunkSize = options.chunkSize;
    this.loadTimeoutMs = options.loadTimeoutMs ?? 60_000;
    this.closeTimeoutMs = options.closeTimeoutMs ?? 1_000;
    // Made only once the options passed: a constructor that throws must leave nothing open.
    this.channel = new BroadcastChannel(this.retireChannel);
    this.channel.onmessage = (ev) => {
      const m = (ev as MessageEvent).data as { holding?: unknown; retired?: unknown; helperPids?: Record<string, number[]>; laneBooks?: LaneBooks } | null;
      if (m?.laneBooks && this.onLaneBooks) {
        try {
          this.onLaneBooks(m.laneBooks);
        } catch {
          /* the daemon's business */
        }
      }
      if (m?.helperPids && this.onHelperPids) {
        // From a native lane batch (lane-worker.ts): as judge() reports a task's.
        for (const [name, pids] of Object.entries(m.helperPids)) {
          try {
            this.onHelperPids(name, pids);
          } catch {
            /* the daemon's business */
          }
        }
      }
      if (typeof m?.holding === 'number') this.holders.add(m.holding);
      if (typeof m?.retired === 'number') {
        this.retired.add(m.retired);
        this.onRetired?.();
      }
    };
    this.channel.unref(); // after onmessage, which refs the channel again: an unclosed pool must not hold the process
    this.threads = options.threads;
    this.onHelperPids = options.onHelperPids;
    this.onLaneBooks = options.onLaneBooks;
    this.piscina = new Piscina({
      filename: WORKER_FILE,
      minThreads: options.threads,
      maxThreads: options.threads,
      // Loaded actors (parsed databases) live in the workers: do not let idle ones go.
      idleTimeout: 2 ** 31 - 1,
      // Idle workers wait with Atomics.waitAsync: their event loop keeps running (child-process and timer
      // callbacks of actors are never frozen between tasks).
      atomics: 'async',
      execArgv: workerExecArgv(),
      workerData: { retireChannel: this.retireChannel, lanePool: this.lanePool },
    });
    this.piscina.on('workerCreate', () => this.watchWorkers());
    // The lane's jobs of the dead worker went to JS already (lane_queue.cc LaneWorkerGone): only told, never thrown.
    const onWorkerError = options.onWorkerError;
    this.piscina.on('error', (err: Error) => {
      try {
        onWorkerError?.(err);
      } catch {
        /* the daemon's business */
      }
    });
  }

  /** Sweep the given-up tasks' process groups when any worker exits (its slots can no longer change). */
  private watchWorkers() {
    for (const w of this.piscina.threads) {
      if (this.watched.has(w)) continue;
      this.watched.add(w);
      w.once('exit', () => this.sweepGivenUp());
    }
  }

  private giveUp(task: LoadTask | ScanTask | JudgeTask) {
    killGroups(task.started, task.marker, this.reaper);
    this.givenUp.set(task, Date.now() + GIVEN_UP_WATCH_MS);
  }

  private sweepGivenUp() {
    const now = Date.now();
    for (const [task, until] of this.givenUp) {
      killGroups(task.started, task.marker, this.reaper);
      if (now > until) this.givenUp.delete(task);
    }
  }

  /**
   * Load the entry's actor afresh from disk and report its generation, init warnings and manifest. One load per
   * worker, at once, so that every worker holds the new data before its next scan (no scan waits out a big
   * database's load); a worker that missed it (busy, or replaced later) loads at its first scan of this generation
   * (src/pool/load-actor.ts). Workers that disagree mean the data changed on disk meanwhile: an error.
   */
  async describe(entry: PoolEntry): Promise<ActorDescription> {
    const task = (): LoadTask => ({ op: 'load', fresh: true, entry: { name: entry.name, actor: entry.actor, options: entry.options }, started: startSlot(), marker: nextMarker() });
    const results = await Promise.all(Array.from({ length: this.threads }, () => this.runTask(task(), this.loadTimeoutMs, undefined, entry.name)));
    let first: LoadResult | undefined;
    for (const r of results) {
      if (r === 'timeout') throw new PoolError('POOL_TIMEOUT', `${entry.name}: loading ${entry.actor} took longer than ${this.loadTimeoutMs} ms`);
      if (r instanceof Error) throw new PoolError('POOL_LOAD', `${entry.name}: worker failed while loading ${entry.actor}: ${r.message}`, { cause: r });
      if (isFailure(r)) throw new PoolError('POOL_LOAD', r.error.message);
      const loaded = r as LoadResult;
      if (first && loaded.generation !== first.generation) {
        throw new PoolError('POOL_LOAD', `${entry.name}: ${entry.actor} changed on disk while it was being loaded; try again`);
      }
      first ??= loaded;
    }
    const { generation, warnings, manifest, generationRefreshMs } = first!;
    return generationRefreshMs === undefined ? { generation, warnings, manifest } : { generation, warnings, manifest, generationRefreshMs };
  }

  async generation(entry: PoolEntry): Promise<string> {
    return (await this.describe(entry)).generation;
  }

  /**
   * Scan one file with one entry's actor. Resolves to an outcome for everything the actor or its worker does;
   * rejects only when `signal` aborts (with its reason) or the pool is closed (POOL_CLOSED).
   */
  async scan(
    file: { fd: number; size: number; path: string },
    entry: PoolEntry,
    opts: { timeoutMs: number; signal?: AbortSignal; fleet?: ScanTask['fleet']; digest?: true },
  ): Promise<ScanOutcome> {
    if (entry.maxSize !== undefined && file.size > entry.maxSize) {
      return { kind: 'error', code: 'too-large', message: `${entry.name}: ${file.path} is ${file.size} bytes, over the limit of ${entry.maxSize}` };
    }
    const task: ScanTask = {
      op: 'scan',
      file: { fd: file.fd, size: file.size, path: file.path },
      entry: { name: entry.name, actor: entry.actor, options: entry.options, ...(entry.generation === undefined ? {} : { generation: entry.generation }) },
      chunkSize: this.chunkSize,
      started: startSlot(),
      marker: nextMarker(),
      ...(opts.fleet && { fleet: opts.fleet }),
      ...(opts.digest && { digest: true as const }),
    };
    const r = await this.runTask(task, opts.timeoutMs, opts.signal, entry.name);
    if (r === 'timeout') return { kind: 'error', code: 'timeout', message: `${entry.name}: no answer for ${file.path} within ${opts.timeoutMs} ms of starting` };
    if (r instanceof Error) return { kind: 'error', code: 'crash', message: `${entry.name}: worker died scanning ${file.path}: ${r.message}` };
    if (isFailure(r)) return { kind: 'error', code: r.error.code, message: r.error.message };
    const s = r as ScanResult;
    const out: ScanOutcome = s.reason === undefined ? { kind: 'answer', answer: s.answer, ms: s.ms, generation: s.generation } : { kind: 'answer', answer: s.answer, reason: s.reason, ms: s.ms, generation: s.generation };
    if (s.shared) out.shared = true;
    if (s.digest) out.digest = s.digest;
    return out;
  }

  /**
   * The policy of a lane epoch, for the workers' native lane batches (lane-worker.ts): announced before the gate
   * queues anything under that epoch; a worker that has not got it yet hands its batch to JS.
   */
  announceLane(epoch: number, policy: JudgePolicy): void {
    if (this.closed) return;
    const lane: LaneAnnounce = { epoch, policy: policyRef(policy), timeoutMs: policy.timeoutMs };
    if (this.chunkSize !== undefined) lane.chunkSize = this.chunkSize;
    this.channel.postMessage({ lane });
  }

  /**
   * Judge a batch of files end to end in one worker (judge-batch.ts): tags, leases, scans and result tags happen
   * there, and the main thread gets one message back for the batch. The deadline is `policy.timeoutMs` without
   * progress (no file judged); when it passes, or the worker dies, the whole batch is reported failed and the
   * caller decides what each of its files gets.
   */
  async judge(fds: number[], policy: JudgePolicy, lane?: JudgeLane): Promise<JudgeResult | { failed: 'timeout' | 'crash'; message: string }> {
    // Room for a process group per scan of every file: the files of a batch scan at once.
    const task: JudgeTask = { op: 'judge', fds, policy: policyRef(policy), chunkSize: this.chunkSize, started: startSlot(fds.length * policy.scanners.length), marker: nextMarker(), ...(lane && { lane }) };
    const r = await this.runTask(task, policy.timeoutMs);
    if (r === 'timeout') return { failed: 'timeout', message: `no file of the batch judged within ${policy.timeoutMs} ms` };
    if (r instanceof Error) return { failed: 'crash', message: `worker died judging a batch: ${r.message}` };
    if (isFailure(r)) return { failed: 'crash', message: r.error.message };
    const result = r as JudgeResult;
    if (result.helperPids && this.onHelperPids) {
      for (const [name, pids] of Object.entries(result.helperPids)) {
        try {
          this.onHelperPids(name, pids);
        } catch {
          /* the daemon's business; the result stands */
        }
      }
    }
    return result;
  }

  /** For status: workers, tasks waiting for a worker, tasks running (scans and loads), utilization 0..1. */
  stats(): { threads: number; queued: number; running: number; utilization: number } {
    const queued = this.piscina.queueSize;
    return { threads: this.piscina.threads.length, queued, running: Math.max(0, this.inFlight.size - queued), utilization: this.piscina.utilization };
  }

  /**
   * Stop every worker; scans in flight reject with POOL_CLOSED. First each worker retires its actors (their close()
   * hooks), within closeTimeoutMs: a worker stuck in a synchronous scan cannot, and is destroyed with the rest.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.retireActors();
    // destroy(), not close(): close() waits for running tasks (a hanging actor: for ever), and aborting them
    // first would make Piscina start replacement workers only to terminate them at once.
    const destroyed = this.piscina.destroy();
    // Synchronously after destroy() began, so every rejection that follows finds its task marked POOL_CLOSED.
    const tasks = [...this.inFlight.values()];
    for (const [ac, task] of this.inFlight) {
      killGroups(task.started, task.marker, this.reaper);
      ac.abort(new PoolError('POOL_CLOSED', 'the scan pool was closed'));
    }
    await destroyed;
    // Every worker is gone now: what they registered or spawned at the last moment is final.
    for (const task of [...tasks, ...this.givenUp.keys()]) killGroups(task.started, task.marker, this.reaper);
    this.givenUp.clear();
    await this.reaper.close();
  }

  /**
   * A reload: the stack now holds these entries. Every worker retires the instances of any other (their close()
   * hooks run in the worker, asynchronously); a later task that still names one loads it again.
   */
  retainOnly(entries: PoolEntry[]): void {
    if (this.closed) return;
    this.channel.postMessage({ keep: entries.map(slotKey) });
  }

  /**
   * Ask every worker to run its actors' close() hooks; resolves when every live worker that holds actors answered,
   * or at closeTimeoutMs (a worker stuck in a synchronous scan never answers).
   */
  private async retireActors(): Promise<void> {
    // One turn of the event loop first: a worker's "holding" already posted is then dispatched here.
    await new Promise((r) => setImmediate(r));
    const live = new Set(this.piscina.threads.map((w) => w.threadId));
    const expected = () => [...this.holders].filter((id) => live.has(id));
    if (expected().length === 0) {
      this.channel.close();
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.onRetired = undefined;
        this.channel.close();
        resolve();
      };
      const timer = setTimeout(done, this.closeTimeoutMs);
      // Re-read on each answer: a holder heard of during the wait is waited for too.
      this.onRetired = () => {
        if (expected().every((id) => this.retired.has(id))) done();
      };
      this.channel.postMessage('retire');
    });
  }

  /** Run one task with a deadline: the worker's result, 'timeout', or the Error a dead worker left. */
  private async runTask(task: LoadTask | ScanTask | JudgeTask, timeoutMs: number, signal?: AbortSignal, entryName?: string): Promise<WorkerResult | 'timeout' | Error> {
    if (this.closed) throw new PoolError('POOL_CLOSED', 'the scan pool is closed');
    if (!positiveInteger(timeoutMs)) throw new PoolError('POOL_OPTIONS', 'ScanPool: timeoutMs must be a positive integer');
    signal?.throwIfAborted();
    const ac = new Cancel();
    const times = new Float64Array(task.started, 0, 2);
    let timer: NodeJS.Timeout;
    // Queued: look again a whole timeout later (the scan's own deadline is at least that far away). Picked up but
    // still loading its actor: the load has loadTimeoutMs of its own. Begun: the timeout counts from there.
    const check = () => {
      const begun = times[SLOT_BEGUN]!;
      const picked = times[SLOT_PICKED]!;
      const left = begun > 0 ? begun + timeoutMs - Date.now() : picked > 0 ? picked + this.loadTimeoutMs + timeoutMs - Date.now() : timeoutMs;
      if (left > 0) timer = setTimeout(check, Math.ceil(Math.min(left, timeoutMs)));
      else ac.abort(DEADLINE);
    };
    timer = setTimeout(check, timeoutMs);
    const onAbort = () => ac.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    this.inFlight.set(ac, task);
    try {
      const result = await this.piscina.run(task, { signal: ac as unknown as AbortSignal });
      // Closing: the actors are being retired under this task (their close() may have failed it). Whatever it
      // answered is not a verdict; the caller gets POOL_CLOSED, as for a task cut off by the close.
      if (this.closed) throw new PoolError('POOL_CLOSED', 'the scan pool was closed');
      const holder = (result as { holder?: number }).holder; // worker.ts: the first result after a load says so
      if (holder !== undefined) this.holders.add(holder);
      const pids = (result as { helperPids?: number[] }).helperPids;
      if (pids && entryName !== undefined && this.onHelperPids) {
        try {
          this.onHelperPids(entryName, pids);
        } catch {
          /* the daemon's business; the result stands */
        }
      }
      return result;
    } catch (err) {
      if (err instanceof PoolError && err.code === 'POOL_CLOSED' && !ac.aborted) throw err; // answered during the close
      // The task is given up (deadline, the caller's abort, close) or its worker died: whatever its actor started
      // goes with it. A worker that returned normally has released its groups itself.
      this.giveUp(task);
      if (ac.aborted) {
        if (ac.reason === DEADLINE) return 'timeout';
        throw ac.reason; // the caller's abort, or POOL_CLOSED
      }
      return err instanceof Error ? err : new Error(String(err));
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      this.inFlight.delete(ac);
    }
  }
}
