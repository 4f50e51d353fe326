// What the daemon reports about itself: the notices it emits and the status it answers. Types only, in their own
// module so that the socket side (src/notify) can name them without importing the daemon.
import type { Gate } from '../gate/gate.js';
import type { FleetCount } from '../fleet/counters.js';
import type { ScanHistogram } from '../metrics/scan-durations.js';
import type { JudgeQueue } from '../pool/judge-queue.js';

export interface Notice {
  event: 'dirty' | 'verdict';
  time: number;
  [k: string]: unknown;
}

export interface DaemonStats {
  gate: ReturnType<Gate['native']['stats']>;
  scans: Record<string, number>;
  /** Per scanner: how long its scans took, from their pool slot to their answer (tag written). */
  scanDurations: Record<string, ScanHistogram>;
  verdicts: { allow: number; deny: number };
  /** The cold path's queue: files waiting, batches in flight, batches and files sent to the pool so far. */
  judgeQueue: ReturnType<JudgeQueue['stats']>;
  machines: number;
  machineStates: Record<string, number>;
  guards: { path: string; kind: string; mode: string; fallback?: string }[];
  errors: number;
  refusedPerUid: number;
  crawl?: { visited: number; errors: number; running: boolean; pausedOnBattery: boolean };
  /** The fleet store's lookups and publishes (src/fleet/counters.ts), when fleet.store is set. */
  fleet?: Record<FleetCount | 'lookupUs', number>;
}

/** The counters the pieces of the daemon bump; stats() copies them. */
export interface Counters {
  scans: Record<string, number>;
  verdicts: { allow: number; deny: number };
  errors: number;
  /** Accesses refused with EAGAIN because their uid had pool.queuePerUid files in judgement already. */
  refusedPerUid: number;
}
