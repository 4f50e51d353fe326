// What the pieces of the daemon share (dispatch, inode services, the tag fast path, the lifecycle). One record,
// filled in by Daemon.init() in this order: config, tag store, pool, stack, registry, gate. Nothing here acts.
import { CostBook } from './costs.js';
import { ScanDurations } from '../metrics/scan-durations.js';
import { LogLimit } from './log-limit.js';
import { withFleet, type Fleet } from '../fleet/policy.js';
import { fleetScope, type FleetScope } from '../fleet/scope.js';
import type { StackEntry } from '../config/types.js';
import type { Config } from '../config/types.js';
import type { Gate } from '../gate/gate.js';
import { FAN_ALLOW, FAN_DENY, denyErrno } from '../gate/types.js';
import type { InodeRegistry } from '../inode/registry.js';
import type { InodeServices } from '../inode/services.js';
import { REMOTE_ACTOR, RemoteScanners } from '../notify/remote-scanners.js';
import type { ScanPool } from '../pool/scan-pool.js';
import type { JudgeQueue } from '../pool/judge-queue.js';
import { ScanCounter } from '../pool/scan-counter.js';
import type { JudgePolicy } from '../pool/tasks.js';
import type { TagStore } from '../tags/index.js';
import type { Logger } from './logger.js';
import { FairSlots } from './fair-slots.js';
import { Semaphore } from './semaphore.js';
import type { StackState } from './stack-state.js';
import type { Counters, Notice } from './stats.js';

export class DaemonParts {
  gate!: Gate;
  tags!: TagStore;
  /** The tag MAC key (the native reader verifies tags with it too). */
  tagKey!: Buffer;
  pool!: ScanPool;
  /** The fleet store (fleet.store), or null: its policy rides with every judge policy (src/fleet/policy.ts). */
  fleet: Fleet | null = null;
  stack!: StackState;
  registry!: InodeRegistry;
  svc!: InodeServices;
  stopping = false;
  /** The gate's reader thread settles misses from their tags (a tag policy is set): JS need not read them again. */
  nativeSettles = false;
  readonly counters: Counters = { scans: {}, verdicts: { allow: 0, deny: 0 }, errors: 0, refusedPerUid: 0 };
  /** Scans the workers started on the cold path, counted as they start (added to counters.scans in stats). */
  readonly scanCounter = new ScanCounter();
  readonly fsids = new Map<number, string>(); // st_dev -> fsid hex, for notices
  readonly mountFds = new Map<string, number>(); // fsid -> directory fd, for open_by_handle_at
  /** Out-of-process scanners registered on the control socket (src/notify). */
  readonly remote = new RemoteScanners(this.fsids);
  allowResponse = FAN_ALLOW;
  denyResponse = FAN_DENY;
  /** The retryable refusal (gate.retryErrno): deadline (onDeadline: retry) and overload answers. */
  retryResponse = denyErrno('EAGAIN');
  /** Observe scanners (and the crawl) never take the last worker: gating scans must not queue behind them. */
  backgroundSlots = new Semaphore(1);
  /** Gating scans reach the pool round-robin across the uids that started them. */
  fairSlots = new FairSlots(2);
  /** The cold path: files judged end to end in the pool, in batches, round-robin across the uids waiting. */
  judgeQueue!: JudgeQueue;
  /** Lines a user can cause at will (denials) are rate-limited, with a count of what was not written. */
  readonly logLimit: LogLimit;
  /** Who costs what (per process, path, uid), for `blessctl stats --by`. */
  readonly costs = new CostBook();
  /** How long scans took, per scanner (the metrics' scan-duration histogram). */
  readonly scanDurations = new ScanDurations();
  /** Whether anyone hears verdict notices now (set by the Daemon: verdictsHeardWhen); if not, none is built. */
  hearsVerdicts: () => boolean = () => true;
  /** The stack epoch workers conclude cold allows under (native/fanotify/lane.cc); bumped by every change of it. */
  laneEpoch = 0;

  constructor(
    /** Replaced by a reload (guards and gate settings kept). */
    public config: Config,
    readonly log: Logger,
    /** Where notices go (the daemon's 'notice' event). */
    readonly emit: (notice: Notice) => void,
  ) {
    this.logLimit = new LogLimit(log);
  }

  /** The stack a worker judges with, or null where the cold path does not serve it (stack-state.ts). */
  judgePolicy(): JudgePolicy | null {
    const policy = this.stack.judgePolicy(this.config, this.tagKey, this.tags.namespace, this.scanCounter);
    return policy && withFleet(policy, this.fleet);
  }

  private scopeOf?: { stack: readonly StackEntry[]; scope: FleetScope; served: Set<string> };

  /** Which scanners of the current stack the fleet store serves (src/fleet/scope.ts); found again per stack. */
  fleetScope(): { scope: FleetScope; served: Set<string> } {
    const stack = this.stack.stack;
    if (this.scopeOf?.stack !== stack) {
      const scope = fleetScope(stack, REMOTE_ACTOR);
      this.scopeOf = { stack, scope, served: new Set(scope.served) };
    }
    return this.scopeOf;
  }

  /** Scans started per scanner: the main thread's (slow path, remote) and the workers' (cold path). */
  scansStarted(): Record<string, number> {
    const out = { ...this.counters.scans };
    for (const [name, n] of Object.entries(this.scanCounter.snapshot())) out[name] = (out[name] ?? 0) + n;
    return out;
  }

  /** What an answer without a verdict gives (gate.onDeadline): never allow unless configured. */
  fallbackResponse(): number {
    const a = this.config.gate.onDeadline;
    return a === 'allow' ? this.allowResponse : a === 'deny' ? this.denyResponse : this.retryResponse;
  }
}
