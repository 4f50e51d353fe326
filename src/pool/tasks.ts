// What crosses between the pool (main thread) and its workers: plain, structured-clonable objects only.
import type { JudgedStamp } from '../gate/types.js';
import type { Control } from '../config/types.js';
import type { FleetPolicy } from '../fleet/share.js';
import type { Answer, AnswerKind } from '../policy/answer.js';
import type { ActorManifest } from './actor.js';
import type { FailureAction } from './failure.js';
import type { PolicyRef } from './policy-wire.js';

/** One entry of a scanner stack, as the pool needs it. */
export interface PoolEntry {
  /** Scanner (tag) name. */
  name: string;
  /** A built-in actor name (`signature`, `exec`, ...) or a path to an actor module. */
  actor: string;
  options?: Record<string, unknown>;
  /** Files larger than this (bytes) are not scanned: outcome `too-large`. Default: no limit. */
  maxSize?: number;
  /**
   * The actor generation the daemon expects (from the last describe): a worker whose instance is of another
   * generation loads the actor again (a database changed and reloaded). Unset: any loaded instance will do.
   */
  generation?: string;
}

/**
 * The SharedArrayBuffer each task carries (`started`): two Float64 the worker sets to Date.now() — [0] when it
 * picks the task up (before loading the actor), [1] when the work itself begins — then SLOT_GROUPS Int32
 * process-group ids an actor is running for the task (0 = free).
 */
export const SLOT_PICKED = 0;
export const SLOT_BEGUN = 1;
export const SLOT_GROUPS_AT = 16;
export const SLOT_GROUPS = 14;
export const SLOT_BYTES = SLOT_GROUPS_AT + 4 * SLOT_GROUPS;

export type WorkerEntry = Pick<PoolEntry, 'name' | 'actor' | 'options' | 'generation'>;


export interface LoadTask {
  op: 'load';
  entry: WorkerEntry;
  /** The task's shared slot (SLOT_*): start times and process groups. */
  started: SharedArrayBuffer;
  marker: string;
  /** Load from disk, whatever the worker has cached (start, reload). */
  fresh?: boolean;
}

export interface ScanTask {
  op: 'scan';
  /** The fd is the daemon's (same process, shared by every thread): the worker must never close it. */
  file: { fd: number; size: number; path: string };
  entry: WorkerEntry;
  chunkSize?: number;
  /** The task's shared slot (SLOT_*): start times and process groups. */
  started: SharedArrayBuffer;
  /** Unique per task: put into the environment of programs the actor spawns, to find them by (scan-file.ts). */
  marker: string;
  /**
   * The fleet store, and this scanner's tag generation (the key names it): src/fleet/share.ts. With `digest`: the
   * file's digest from another scanner's content pass (src/daemon/digest-round.ts), used instead of a read of its
   * own if it still names the file (its stamp, and its ctime or `ownCtimeNs`: the ctime right after our last tag
   * write on the file).
   */
  fleet?: { policy: FleetPolicy; generation: string; digest?: FileDigest; ownCtimeNs?: bigint };
  /** Ask a content pass (content-pass.ts) for the SHA-256 it reads anyway: it comes back as ScanResult.digest. */
  digest?: true;
}

/** A file's SHA-256 up to its stamped size, and the stamp and ctime it names (src/fleet/digest.ts). */
export interface FileDigest {
  sha256: string;
  stamp: { ino: bigint; igen: number; size: bigint; mtimeNs: bigint };
  ctimeNs: bigint;
  /** A pass's digest only: ctime moved during the pass (from this): good only if it is the ctime our own tag write
   * left (another scanner's lease, taken meanwhile), which the main thread knows (src/daemon/digest-round.ts). */
  ctimeMovedFrom?: bigint;
}

export type WorkerTask = LoadTask | ScanTask | JudgeTask;

/** 'load': module or init failed; 'crash': scan threw or answered nonsense; 'timeout': the actor said it timed out. */
export interface WorkerFailure {
  error: { code: 'load' | 'crash' | 'timeout' | 'too-large'; message: string; actorCode?: string };
  helperPids?: number[];
}

export interface LoadResult {
  generation: string;
  warnings: string[];
  manifest: ActorManifest;
  /** The actor asks to be asked its generation again this often (ms). */
  generationRefreshMs?: number;
  helperPids?: number[];
}

export interface ScanResult {
  answer: AnswerKind;
  reason?: string;
  generation: string;
  /** Time spent in scan() (not loading), in ms. */
  ms: number;
  helperPids?: number[];
  /** Another host's answer from the fleet store: nothing was scanned. */
  shared?: true;
  /** The content's digest this task read anyway (a content pass asked for it, or the fleet lookup's): for the
   * content stamp and the other scanners of the file, so that nothing reads the file again for it. */
  digest?: FileDigest;
}

export type WorkerResult = LoadResult | ScanResult | WorkerFailure | JudgeResult;

/** A scanner of the stack as a judge task needs it: its actor, and what its failures answer (the entry's policy). */
export interface JudgeScanner extends WorkerEntry {
  maxSize?: number;
  /** Its slot in `JudgePolicy.scanCounts` (scan-counter.ts); -1 or absent: counted by the main thread. */
  counter?: number;
  onError: FailureAction;
  onTimeout: FailureAction;
  onTooLarge: FailureAction;
}

/**
 * What a worker judges a file with: the stack as rules (a constant answer where the entry needs no scan), each
 * scanner's tag generation, the pool actors behind the rules, and the tag store's settings.
 */
export interface JudgePolicy {
  rules: { name: string; control: Control; constant?: Answer }[];
  /** Tag generation per scanner (actor generation + bump counter). */
  generations: Record<string, string>;
  scanners: JudgeScanner[];
  tags: { namespace: 'trusted' | 'user'; key: Uint8Array; leaseMs: number; stampMode: 'ctime' | 'mtime' };
  /** Bound of a scan that goes on after its file's verdict (a slower scanner writing its tag). */
  timeoutMs: number;
  /** Scans started per scanner slot, counted by the workers as each starts (scan-counter.ts). */
  scanCounts?: SharedArrayBuffer;
  /** The fleet store (src/fleet/share.ts), when fleet.store is set. */
  fleet?: FleetPolicy;
}

/**
 * One pool task for a batch of files: each is judged end to end in the worker (tags, lease, scans, result tags).
 * Deadline: the worker stamps SLOT_BEGUN when the scans start and again each time a file is judged, so a batch is
 * given up only after `timeoutMs` without progress.
 */
export interface JudgeTask {
  op: 'judge';
  /** The daemon's descriptors (shared by every thread): never closed by the worker. */
  fds: number[];
  /** The JudgePolicy, sent once and referred to by id after (policy-wire.ts). */
  policy: PolicyRef;
  chunkSize?: number;
  started: SharedArrayBuffer;
  marker: string;
  /** The native lane (native/fanotify/lane.cc): conclude plain allows here, with this gate and stack epoch, and each
   * file's change sequence (as `fds`). Absent: every judgement goes back to the main thread to be concluded. */
  lane?: JudgeLane;
}

export interface JudgeLane {
  gate: number;
  epoch: number;
  seqs: number[];
  /** The native lane queue's jobs (lane-worker.ts, as `fds`): each is finished natively (laneFinish), never sent
   * back; `finished` holds the indexes finished already (concluded, or handed over at the batch's deadline). */
  tickets?: number[];
  finished?: Set<number>;
}

/** One file's judgement, as the worker leaves it. */
export interface JudgedFile {
  /** readlink of the fd, for display. */
  path: string;
  /** Every answer known when the file was decided: constants, valid tags, fresh scans. */
  answers: [string, Answer][];
  /** Scanners whose answer stands in for a failure: a verdict resting on one is not cached. */
  transient: string[];
  /** Scanners the worker left to the main thread: a foreign live lease, or content that changed under the scan. */
  slow: string[];
  /** Scans run: the actor's own time (ms), and the whole of it from the lease to the result tag written (totalMs). */
  scans: { name: string; ms: number; totalMs: number }[];
  /** Scan attempts of scanners without a shared counter slot (JudgeScanner.counter): the main thread counts them. */
  uncounted: string[];
  /** Tags that could not be written (no room, no support): the answer holds in memory only. */
  tagErrors: { name: string; message: string }[];
  /** Tags alone decided it: nothing was scanned. */
  fromTags: boolean;
  /** Size and mtime before its tags or content were read, ctime after the last tag written: the bless lands only if the file is still so. */
  judged?: JudgedStamp;
  /** Concluded allow in the worker (blessed, and these event ids answered): the main thread only keeps the books. */
  concluded?: number[];
  /** Concluded by a native lane job (lane_queue.cc): the events answered there, as [pid, uid, waitedUs, ...]. */
  laneWaits?: number[];
}

export interface JudgeResult {
  files: JudgedFile[];
  /** Helper processes of the actors that ran (per scanner name): exempt them before their next read. */
  helperPids?: Record<string, number[]>;
}
