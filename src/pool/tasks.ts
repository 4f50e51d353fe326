// What crosses between the pool (main thread) and its workers: plain, structured-clonable objects only.
import type { AnswerKind } from '../policy/answer.js';
import type { ActorManifest } from './actor.js';

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
}

export type WorkerTask = LoadTask | ScanTask;

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
}

export type WorkerResult = LoadResult | ScanResult | WorkerFailure;
