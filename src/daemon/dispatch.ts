// Overview — the hot path: everything the native reader thread could not answer alone arrives here in batches.
// Each permission event is either answered at once (exempt, nfsd, settled by its tags) or handed to its inode
// machine, which answers it at the verdict. If anything here throws, the event is answered on the spot: no path
// leaves a permission event to the deadline by mistake. It must not wait: nothing here awaits.
import { readFileSync, statSync } from 'node:fs';
import { isExemptPath } from '../config/glob.js';
import { native } from '../gate/addon.js';
import { FAN_ALLOW, MASK, denyErrno, type GateEvent } from '../gate/types.js';
import { inodeKey } from '../inode/registry.js';
import { DAEMON_NAME, readsOwnLease } from '../tags/lease-reader.js';
import type { AccessKind, Waiter } from '../inode/services.js';
import { closeQuiet, readlinkQuiet } from './fs-quiet.js';
import { openRegularByHandle } from './open-regular.js';
import type { DaemonParts } from './parts.js';
import type { TagSettler } from './settle-by-tags.js';

const CONTENT_CHANGE = MASK.MODIFY | MASK.CLOSE_WRITE;

export class Dispatch {
  constructor(
    private readonly d: DaemonParts,
    private readonly settler: TagSettler,
  ) {}

  onEvents(batch: GateEvent[]) {
    const d = this.d;
    for (const ev of batch) {
      try {
        if (ev.kind === 'perm') this.onPermission(ev);
        else if (ev.kind === 'change') this.onChange(ev);
        else if (ev.kind === 'settled') this.onSettled(ev);
        else if (ev.kind === 'fallback') this.logFallback(ev);
        else d.log.warn('kernel queue overflow: every cached verdict was dropped; tags on disk still hold');
      } catch (err) {
        d.counters.errors++;
        if (ev.kind === 'perm') d.gate.native.answer(ev.id, d.fallbackResponse());
        if (ev.kind === 'settled') d.gate.native.release(ev.fd);
        d.log.error({ err, event: ev.kind, pid: ev.pid }, 'event handling failed; answered it on the spot');
      }
    }
  }

  /**
   * The native thread answered without a verdict (deadline, overload, a uid past its share). It sends at most
   * 20 records a second per reason and counts the rest in `suppressed`, so logging each record is the rate limit.
   */
  private logFallback(ev: GateEvent) {
    const g = this.d.config.gate;
    const answer = ev.response === FAN_ALLOW ? 'allowed' : ev.response === this.d.retryResponse ? `refused (${g.retryErrno}, retryable)` : 'denied';
    const why = {
      deadline: `no verdict within gate.deadline (${g.deadline} ms)`,
      'access-deadline': 'this access had its deadline answer already and the verdict is still pending',
      overload: `gate.maxPending (${g.maxPending}) events were waiting already`,
      'uid-share': `this uid had its share (gate.maxPendingPerUid ${g.maxPendingPerUid}) of waiting events already`,
      'queue-per-uid': `this uid had pool.queuePerUid (${this.d.config.pool.queuePerUid}) files in judgement already`,
    }[ev.why ?? 'deadline'];
    const detail = { path: ev.path, pid: ev.pid, tid: ev.tid, uid: ev.uid, exe: ev.exe, why: ev.why, answer, access: accessOf(ev.mask), notLogged: ev.suppressed };
    this.d.log.warn(detail, `${answer} without a verdict: ${why}${ev.suppressed ? ` (${ev.suppressed} more like it not logged)` : ''}`);
  }

  private onPermission(ev: GateEvent) {
    const d = this.d;
    if (d.stopping) {
      // Not judged, and never will be by this daemon: what the deadline answers (fail closed by default).
      d.gate.native.answer(ev.id, d.fallbackResponse());
      return;
    }
    if (this.isExempt(ev) || this.isPeerScan(ev)) {
      d.gate.native.answer(ev.id, FAN_ALLOW);
      return;
    }
    const key = inodeKey(ev.dev, ev.ino);
    // The reader thread read the accessor's (real) uid already, for its own per-uid share: the same bucket here,
    // and no stat of /proc on the main thread.
    const uid = ev.uid ?? uidOf(ev.pid);
    const waiter: Waiter = { id: ev.id, pid: ev.pid, access: accessOf(ev.mask), since: performance.now(), uid };
    d.costs.know(ev.pid);
    // A kernel nfsd thread must not sit in our wait: EAGAIN makes it answer NFS4ERR_DELAY and the client retries.
    const nfsd = isNfsd(ev.pid);
    if (!d.registry.has(key)) {
      if (d.registry.liveOf(uid) >= d.config.pool.queuePerUid) {
        // The bound is an answer: a retryable refusal now, never a wait behind this uid's own flood.
        d.gate.native.answer(ev.id, denyErrno('EAGAIN'));
        this.noteRefused(uid);
        return;
      }
      // The reader thread has already tried the tags when it settles misses (nativeSettles): no second read here.
      if (!d.nativeSettles && this.settler.settle(ev.fd, waiter)) return;
      // The waiter is held from the start: a judgement may end before this function returns to hold it.
      d.registry.ensure(key, native.dupFd(ev.fd), { uid, waiter: nfsd ? undefined : waiter, seq: ev.seq });
      if (!nfsd) return;
    }
    if (nfsd) {
      d.gate.native.answer(ev.id, d.retryResponse);
      return;
    }
    if (!d.registry.access(key, waiter)) d.registry.ensure(key, native.dupFd(ev.fd), { uid, waiter, seq: ev.seq });
  }

  /** The reader thread denied this access from the file's tags and cached it: log it as a deny is logged. */
  private onSettled(ev: GateEvent) {
    try {
      this.settler.logDenied(ev.fd, { id: 0, pid: ev.pid, access: accessOf(ev.mask) });
    } finally {
      this.d.gate.native.release(ev.fd);
    }
  }

  private refusedSince = 0;
  private refusedLogged = 0;

  /** Counted always; logged at most once a second, with how many were refused since the last line. */
  private noteRefused(uid: number) {
    const d = this.d;
    d.counters.refusedPerUid++;
    const now = Date.now();
    if (now - this.refusedLogged < 1000) return;
    this.refusedLogged = now;
    const n = d.counters.refusedPerUid - this.refusedSince;
    this.refusedSince = d.counters.refusedPerUid;
    d.log.warn({ uid, refused: n, queuePerUid: d.config.pool.queuePerUid }, `refused ${n} access(es) with EAGAIN: uid ${uid} has pool.queuePerUid files in judgement`);
  }

  private onChange(ev: GateEvent) {
    const d = this.d;
    if (!(ev.mask & CONTENT_CHANGE) || (ev.mask & MASK.ONDIR) || !ev.resolved) return;
    const key = inodeKey(ev.dev, ev.ino);
    const closed = (ev.mask & MASK.CLOSE_WRITE) !== 0;
    if (d.registry.change(key, closed)) return;
    // No machine: the file may still carry tags and a native verdict. A machine born dirty clears them, tells the
    // subscribers, and rescans once the writer closes.
    d.gate.native.forgetInode(ev.dev, ev.ino);
    const fd = this.openByHandle(ev);
    if (fd === undefined) return;
    // A close after an open for write that changed nothing (no modify, tags whose stamp still matches) keeps its
    // verdict: an open-for-write and a close must not wipe a deny tag.
    if (closed && !(ev.mask & MASK.MODIFY) && this.settler.settle(fd)) {
      closeQuiet(fd);
      return;
    }
    d.registry.ensure(key, fd, { dirty: true });
    if (closed) d.registry.change(key, true);
  }

  private openByHandle(ev: GateEvent): number | undefined {
    const mountFd = ev.fsid ? this.d.mountFds.get(ev.fsid) : undefined;
    if (mountFd === undefined || !ev.handle || ev.handleType === undefined) return undefined;
    // Never a plain open: a FIFO, device or socket of a user's would block or misbehave on the main thread.
    return openRegularByHandle(mountFd, ev.handleType, ev.handle);
  }

  /**
   * Another daemon on this kernel reading a file it holds the live lease of: its scan, which our wait for that
   * lease must not hold (docs/sharedfs.md). A filter of cost only, not of trust: another daemon runs as root under
   * the name `blessd run` gives its main thread (comm, read for the nfsd check anyway); only the lease decides.
   * Never an exec.
   */
  private isPeerScan(ev: GateEvent): boolean {
    if (ev.uid !== 0 || (ev.mask & MASK.OPEN_EXEC_PERM) !== 0 || commOf(ev.pid) !== DAEMON_NAME) return false;
    try {
      return readsOwnLease(this.d.tags, ev.fd, ev.pid);
    } catch {
      return false; // tags unreadable: judged like any access
    }
  }

  private isExempt(ev: GateEvent): boolean {
    const { executables, pathMatchers } = this.d.config.exempt;
    if (executables.length > 0) {
      const exe = readlinkQuiet(`/proc/${ev.pid}/exe`);
      if (exe && executables.includes(exe)) return true;
    }
    if (pathMatchers.length > 0) {
      const path = readlinkQuiet(`/proc/self/fd/${ev.fd}`);
      if (path && isExemptPath(pathMatchers, path)) return true;
    }
    return false;
  }
}

function accessOf(mask: number): AccessKind {
  if (mask & MASK.OPEN_EXEC_PERM) return 'exec';
  if (mask & MASK.PRE_ACCESS) return 'read';
  return 'open';
}

// The effective uid of a process: the owner of its /proc directory. Cached briefly (one stat per new pid).
const uidCache = new Map<number, { uid: number; until: number }>();
function uidOf(pid: number): number {
  const now = Date.now();
  const hit = uidCache.get(pid);
  if (hit && hit.until > now) return hit.uid;
  let uid = -1; // gone already: one shared bucket
  try {
    uid = statSync(`/proc/${pid}`).uid;
  } catch {
    /* gone */
  }
  if (uidCache.size > 4096) uidCache.clear();
  uidCache.set(pid, { uid, until: now + 2000 });
  return uid;
}

// A process's name (its main thread's comm), cached briefly: it is asked for every forwarded permission event.
const commCache = new Map<number, { comm: string; until: number }>();
function commOf(pid: number): string {
  const now = Date.now();
  const hit = commCache.get(pid);
  if (hit && hit.until > now) return hit.comm;
  let comm = '';
  try {
    comm = readFileSync(`/proc/${pid}/comm`, 'latin1').trimEnd();
  } catch {
    /* gone */
  }
  if (commCache.size > 4096) commCache.clear();
  commCache.set(pid, { comm, until: now + 2000 });
  return comm;
}

// Whether a pid is a kernel nfsd thread.
function isNfsd(pid: number): boolean {
  return commOf(pid).startsWith('nfsd');
}
