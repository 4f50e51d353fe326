// Types of the native gate (native/fanotify). Kept apart from addon.ts so tests and the daemon can import them
// without loading the addon.

/** Where a guard blocks: at the first read/mmap/exec (pre-content events) or at open. */
export type WaitMode = 'read' | 'open';

/** Kinds of record the native reader delivers to JS. */
export type GateEventKind =
  | 'perm' // a permission event JS must answer with gate.answer(id, ...)
  | 'change' // a record of the change group: modify, close-write, attrib, moves, delete-self
  | 'overflow' // a kernel queue overflowed: every cached verdict was dropped
  | 'settled' // a permission event the native reader denied from the file's tags: JS logs it and must release(fd)
  | 'fallback'; // the native thread answered an event without a verdict (deadline, overload): log it (no fd)

/** Why a 'fallback' answer was given. */
export type FallbackWhy = 'deadline' | 'access-deadline' | 'overload' | 'uid-share' | 'queue-per-uid';

export interface GateEvent {
  kind: GateEventKind;
  /** Permission events: the id to answer. 0 for others. */
  id: number;
  /** fd of the gate group's event ('perm' and 'settled'); -1 for others. */
  fd: number;
  /** fanotify mask bits of the event (see MASK). */
  mask: number;
  /** Accessing process: the thread-group id on perm and fallback records; the thread id where the process could not
   * be read any more. */
  pid: number;
  /** Accessing thread (FAN_REPORT_TID). */
  tid: number;
  /** Real uid of the accessor ('perm' and 'fallback' records), when it could be read. */
  uid?: number;
  /** 'perm' records: the inode's change sequence when forwarded; a worker's conclusion holds only if unmoved (native/fanotify/lane.cc). */
  seq?: number;
  /** 'fallback' records: why, the response written, how many like it went unreported since the last one, and who. */
  why?: FallbackWhy;
  response?: number;
  suppressed?: number;
  exe?: string;
  dev: number;
  ino: number;
  /** Inode generation where known, else 0. */
  gen: number;
  /** FAN_PRE_ACCESS range info (page-aligned), else -1. */
  offset: number;
  count: number;
  /** Change records: fsid as hex, the object's handle type and bytes, and a name relative to the parent. */
  fsid?: string;
  handleType?: number;
  handle?: Buffer;
  dirHandle?: Buffer;
  name?: string;
  /** Change and fallback records: the file's path, for display (absent for a deleted file). */
  path?: string;
  /** Change records: true when dev/ino were resolved (a deleted file's stale handle cannot be). */
  resolved?: boolean;
}

export interface GateOptions {
  /** Receives batches of events on the main thread. Must not throw. */
  onEvents: (events: GateEvent[]) => void;
  /** Deadline for every forwarded permission event, enforced on the native thread. */
  deadlineMs?: number;
  /** How long all events of one access (one inode whose judgement is pending) may wait together. Default deadlineMs. */
  accessDeadlineMs?: number;
  /**
   * What the deadline answers: 'retry' (retryResponse, the default), 'deny' (denyResponse) or 'allow'. Never allow
   * for an inode the native table holds as denied.
   */
  deadlineAnswer?: DeadlineAnswer;
  /** The retryable refusal for deadline ('retry') and overload answers. Default denyErrno('EAGAIN'). */
  retryResponse?: number;
  /** The deadline's 'deny' response. Default FAN_DENY. */
  denyResponse?: number;
  /** Permission events held by JS at once; beyond it the native thread answers retryResponse. */
  maxPending?: number;
  /** Permission events of one uid held at once; beyond it that uid gets retryResponse. Default maxPending / 4. */
  maxPendingPerUid?: number;
  /**
   * Allowed verdicts the native table grows by before a sweep drops those no event asked for since the last sweep
   * (their ignore mark keeps the kernel silent; a dropped one that comes back is settled by its tags or by JS).
   * Denied and dirty entries are never swept. Default 65536.
   */
  maxAllowedEntries?: number;
  /** Pids whose accesses are allowed at once (besides our own process). */
  exemptPids?: number[];
  /** Effective uids whose accesses are allowed at once. */
  exemptUids?: number[];
  /** Ask the kernel to audit-log every answer (FAN_ENABLE_AUDIT + FAN_AUDIT). */
  audit?: boolean;
  /** Tests of overflow handling only: the change group gets the kernel's queue limit instead of none. */
  boundedChangeQueue?: boolean;
  /** Create the change group (file-handle notifications). Default true. */
  changes?: boolean;
}

export type DeadlineAnswer = 'retry' | 'deny' | 'allow';

export interface MarkResult {
  mode: WaitMode;
  /** Why the mode differs from the one asked for, if it does. */
  fallback?: string;
  dev: number;
  fsid: string;
}

export interface GateStats {
  events: Record<string, number>;
  fastOwn: number;
  fastExempt: number;
  fastAllowed: number;
  fastDenied: number;
  fastWriter: number;
  /** Misses the reader thread settled from the file's valid tags (native/tags), without JS. */
  fastTagsAllowed: number;
  fastTagsDenied: number;
  /** Read mode: opens answered on the native thread — only those a deny mark or a tree checkpoint asks about
   * (allowed; refused when the table holds a deny). */
  openAllowed: number;
  openRefused: number;
  /** Allowed entries not trusted because the file's stamp changed since the bless. */
  staleAllowed: number;
  /** mmap(PROT_WRITE, MAP_SHARED) calls seen (pre-content event); their inodes are judged anew at every access until a sweep no longer finds the mapping. */
  sharedWriteMaps: number;
  /** Accesses to such an inode, each made dirty and judged as it is. */
  sharedMapRejudged: number;
  /** Shared writable mappings found by the /proc/<pid>/maps sweep (files that were silent when mapped). */
  sharedMapsSwept: number;
  /** Sweeps of /proc/<pid>/maps done (gate.sharedMapSweep), and the last one's processes read, shared writable
   * mappings of guarded files found, and duration. */
  sharedMapSweeps: number;
  sharedMapSweepProcesses: number;
  sharedMapSweepMappings: number;
  sharedMapSweepMs: number;
  /** Shared writable mappings not tracked because the set was full (65,536 inodes). */
  sharedMapsUntracked: number;
  /** Close-after-write records of denied files that changed nothing: the deny stays. */
  closeUnchanged: number;
  forwarded: number;
  answeredByJs: number;
  answeredByDeadline: number;
  /** Refused (retryResponse) because maxPending events were waiting already. */
  answeredOverload: number;
  /** Refused because the accessor's uid had its share of maxPending waiting already. */
  answeredUidShare: number;
  /** Answered at once because the access's deadline had passed, its judgement still pending. */
  answeredAccessDeadline: number;
  /** Deadline answers that kept a cached deny instead of the configured answer. */
  deadlineKeptDeny: number;
  /** Times the reader thread found the daemon had been stopped (SIGSTOP, a stall of the whole process), and for how long: deadlines do not count that time. */
  deadlineStops: number;
  deadlineStoppedMs: number;
  /** Fallback records not sent to JS (rate limit); counted in the next record's `suppressed`. */
  fallbacksSuppressed: number;
  answeredAtClose: number;
  lateAnswers: number;
  overflows: number;
  coalesced: number;
  changeForwarded: number;
  /** 'settled' records not sent to JS because maxPending fds were held already (the deny stands; its log line is lost). */
  noticesDropped: number;
  pendingNow: number;
  heldFds: number;
  verdictTableSize: number;
  ignoreMarksAdded: number;
  ignoreMarksRemoved: number;
  ignoreMarksRefused: number;
  /** Events set aside because their accessor had not yet fallen asleep when asked whether it writes; those that
   * were then treated as reads after the 5 ms bound. */
  heldForSyscall: number;
  heldExpired: number;
  /** Forgetting everything (overflow, a generation bump, reload, a full table) clears every inode mark's ignore and
   * deny bits in place, the marks staying (docs/kernel.md, "Forgetting every mark"): how many marks were told so.
   * ignoreMarkFlushes: the FAN_MARK_FLUSH calls made where that could not be done (a mark that could not be named). */
  marksForgotten: number;
  /** Forget-alls asked, and those whose marks are cleared by now (a thread of their own does it, after the table). */
  forgetsAsked: number;
  forgetsDone: number;
  ignoreMarkFlushes: number;
  /** Read mode: FAN_OPEN_PERM inode marks put on denied inodes (their opens are refused), removed when the verdict
   * went (forget, a change, a bless), and refused by the kernel (the open then passes; its reads are still refused). */
  denyMarksAdded: number;
  denyMarksRemoved: number;
  denyMarksRefused: number;
  /** Blesses not cached: the file changed since its judgement began (its ctime moved). */
  blessesStale: number;
  /** Allows JS queued behind a stale bless of the same inode, written as the retry answer instead (answers.cc). */
  staleAllowsRefused: number;
  /** Blesses stale by ctime alone whose waiting allows the answer thread checked against the change group, read up to
   * then (answers.cc FlagWrittenSince), and those checks whose drain did not end in time (the allows refused). */
  staleDrains: number;
  staleDrainTimeouts: number;
  /** Cold files concluded allow by a pool worker (native/fanotify/lane.cc), the events it answered, and the
   * conclusions it declined (left to the main thread: a change, a stack epoch that moved, a stale bless...). */
  laneConcluded: number;
  laneAnswered: number;
  laneDeclined: number;
  /** The native lane queue (native/fanotify/lane_queue.cc): cold inodes queued for a worker, events that joined a
   * queued inode, jobs handed to JS, accesses refused past pool.queuePerUid, jobs concluded there, worker wake-ups
   * and batches taken; jobs finished after they were handed over already (laneLate: their deadline came). */
  laneQueued: number;
  laneJoined: number;
  laneHanded: number;
  laneRefused: number;
  laneJobsConcluded: number;
  laneWakes: number;
  laneBatches: number;
  laneLate: number;
  /** Jobs a worker had taken when it went away (an exit, a crash): handed to JS at once, not left to the deadline. */
  laneOrphaned: number;
  /** Allowed entries dropped by sweeps of the verdict table, and how many sweeps ran. */
  verdictTableSwept: number;
  verdictTableSweeps: number;
  /** Tree guards: inodes answered as outside every tree, checks made on the native thread and their total cost. */
  trees: { fastOutside: number; checks: number; checkNs: number; outside: number; changesDropped: number; forgetOnMove: number; relinkedAtOpen: number; checkpoints: number };
  /** Forwarded-event answer latency by JS (kernel read → answer), HDR-style µs buckets: read with src/gate/latency.ts. */
  latencyUs: number[];
  /** The background settle walk (native/fanotify/settle_walk.cc). */
  settleWalk: SettleWalkStats;
}

/** What the settle walk did, summed over its walks. `completed` counts walks that went through every guard. */
export interface SettleWalkStats {
  state: 'off' | 'idle' | 'walking' | 'done';
  filesPerSecond: number;
  runs: number;
  completed: number;
  /** Regular files opened and judged by their tags. */
  walked: number;
  /** Given their table entry and ignore mark (allowed) or their table entry (denied) by the walk. */
  settledAllowed: number;
  settledDenied: number;
  /** Tags missing, stale or undecided: left for their first access. */
  unsettled: number;
  /** Already in the verdict table (settled by an access, dirty, shared-mapped): left as they were. */
  known: number;
  /** Changed between the tag check and the mark: left for their first access. */
  changed: number;
  /** Not regular files, symlinks, mount points: not entered. */
  skipped: number;
  errors: number;
  /** Time spent waiting because forwarded events were pending. */
  pausedMs: number;
}

/**
 * What a bless was judged on: size and mtime before the content was read, ctime after blessd's last tag write. The
 * answer thread adds the ignore mark only if the file still has all three (native/fanotify/answers.cc).
 */
export interface JudgedStamp {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface NativeGate {
  markFilesystem(path: string, mode: WaitMode): MarkResult;
  markMount(path: string, mode: WaitMode): MarkResult;
  /** A filesystem mark on the filesystem of `path`, judging only inodes linked below the directory `path` (native/fanotify/trees.cc). */
  markTree(path: string, mode: WaitMode): MarkResult;
  unmarkTree(path: string): void;
  unmarkFilesystem(path: string): void;
  unmarkMount(path: string): void;
  /**
   * Answer a forwarded permission event. Returns false if it was already answered (deadline, close, an earlier
   * answer). The answer is claimed and counted at once and written by the gate's answer thread (no syscall here);
   * keepFd: written at once, and JS takes the fd and must close it.
   */
  answer(id: number, response: number, keepFd?: boolean): boolean;
  /** Give back the fd of a 'settled' record. */
  release(fd: number): void;
  /** Allow this inode from now on: native verdict table + evictable ignore mark. Returns whether the kernel mark was added. */
  bless(fd: number): boolean;
  /** As bless, on the answer thread, before every answer given after it (the fd stays the caller's). */
  queueBless(fd: number, judged?: JudgedStamp): void;
  /** Deny this inode from now on, on the native thread, with this response (FAN_DENY or denyErrno(e)). */
  condemn(fd: number, response: number): void;
  /** Drop the cached verdict and the ignore mark of this inode. */
  forget(fd: number): void;
  /** Drop the cached verdict (and ignore mark) of an inode known by identity only. */
  forgetInode(dev: number, ino: number): boolean;
  /**
   * Sweep every other process's /proc/<pid>/maps now and every `periodMs`, on a native thread, for shared writable
   * mappings of files on these devices (st_dev): each inode found is judged at every access from then on, its ignore
   * mark dropped; one no sweep finds any more is let go. Called again: the new devices and period. Ends with close().
   */
  sharedMapSweep(o: { periodMs: number; devs: number[] }): void;
  /**
   * Drop every cached verdict at once, and every ignore and deny bit in the kernel on a thread of the gate's own;
   * returns this forget's number, done once forgetsDone() reaches it (Gate.forgetAll waits for that).
   */
  forgetAll(): number;
  forgetsDone(): number;
  setExempt(pids: number[], uids: number[]): void;
  /** What the reader thread settles misses with (native/tags); null: every miss goes to JS. */
  setTagPolicy(policy: NativeTagPolicy | null): void;
  /** Turn on the background settle walk: it walks the guards now, and again after every forgetAll or overflow. */
  settleWalk(options: { filesPerSecond: number }): void;
  stats(): GateStats;
  /** This gate's id in the process-wide lane registry: a pool worker concludes cold files with it (laneConclude). */
  laneId(): number;
  /** The stack epoch a worker's conclusion must carry (native/fanotify/lane.cc); 0: none is accepted. */
  setLane(epoch: number): void;
  /** Queue cold inodes natively for this pool's workers (lane_queue.cc), with the per-uid bound and its refusal;
   * null: hand every event to JS (the jobs still queued go to JS at once). */
  setLaneQueue(queue: { pool: number; perUid: number; refusal: number } | null): void;
  /** JS judges this inode on its own (a registry entry): none of its events is queued natively until laneRelease. */
  laneClaim(dev: number, ino: number): void;
  laneRelease(dev: number, ino: number): void;
  /** Answer everything pending (allow: closing the group would), stop the thread, close the groups. Idempotent. */
  close(): void;
}

/** The stack in the compact form the native tag reader walks (src/daemon/stack-state.ts builds it). */
export interface NativeTagPolicy {
  namespace: 'trusted' | 'user';
  key: Buffer;
  /** The answer of a denied file (FAN_DENY or denyErrno(e)). */
  denyResponse: number;
  /** ctime stamp mode (src/tags/ctime.ts): no result tag counts on an inode changed after our newest tag write. */
  ctime: boolean;
  rules: { name: string; control: 'required' | 'requisite' | 'sufficient' | 'optional' | 'observe'; generation?: string; constant?: 'allow' | 'deny' | 'ok' }[];
}

/** One tag as the native reader judges it (tagsJudge): stamp fields and times as decimal text. */
export interface NativeJudgedTag {
  name: string;
  scanner: string;
  judgement: 'valid' | 'stale-stamp' | 'stale-generation' | 'bad-mac' | 'scanning-live' | 'scanning-expired' | 'unparseable';
  value?: {
    kind: 'result' | 'scanning';
    answer?: 'deny' | 'ok' | 'allow';
    generation?: string;
    reason?: string;
    digest?: string;
    token?: string;
    holder?: string;
    leaseUntil?: string;
    ino: string;
    igen: string;
    size: string;
    mtimeNs: string;
    time: string;
  };
}

export type NativeGateConstructor = new (options: GateOptions) => NativeGate;

/** fanotify mask bits (linux/fanotify.h; FAN_PRE_ACCESS from 6.14). */
export const MASK = {
  ACCESS: 0x1,
  MODIFY: 0x2,
  ATTRIB: 0x4,
  CLOSE_WRITE: 0x8,
  CLOSE_NOWRITE: 0x10,
  OPEN: 0x20,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  OPEN_EXEC: 0x1000,
  Q_OVERFLOW: 0x4000,
  OPEN_PERM: 0x10000,
  ACCESS_PERM: 0x20000,
  OPEN_EXEC_PERM: 0x40000,
  PRE_ACCESS: 0x100000,
  RENAME: 0x10000000,
  ONDIR: 0x40000000,
} as const;

export const FAN_ALLOW = 1;
export const FAN_DENY = 2;
export const FAN_AUDIT = 0x10;

/** Errnos the kernel accepts in FAN_DENY_ERRNO (pre-content groups). */
export const DENY_ERRNOS = { EPERM: 1, EIO: 5, EAGAIN: 11, EBUSY: 16, ETXTBSY: 26, ENOSPC: 28, EDQUOT: 122 } as const;
export type DenyErrno = keyof typeof DENY_ERRNOS;

export function denyErrno(e: DenyErrno): number {
  return (FAN_DENY | ((DENY_ERRNOS[e] & 0xff) << 24)) >>> 0;
}
