// What the inode machines may ask of the daemon (InodeServices), built on the daemon's parts: tags on disk, the
// scan pool, the gate's answers, notices and logs. The machine decides; these do the work.
import { native } from '../gate/addon.js';
import { denyErrno } from '../gate/types.js';
import type { InodeServices, ScanResult, Waiter } from '../inode/services.js';
import type { StackEntry } from '../config/types.js';
import { evaluate, neededScanners } from '../policy/stack.js';
import { buildNotice } from '../notify/file-identity.js';
import { REMOTE_ACTOR } from '../notify/remote-scanners.js';
import { exemptsAccessors } from '../config/glob.js';
import { closeQuiet, readlinkQuiet } from './fs-quiet.js';
import type { DaemonParts } from './parts.js';
import { scanWithTags, type ScanContext } from './scan-service.js';
import { resolveFailure, RETRY } from '../pool/failure.js';
import { judgedStampOf } from '../tags/stamp.js';
import { isPassEntry } from '../fleet/scope.js';
import type { Cancelled } from '../pool/cancel.js';
import { DigestRound } from './digest-round.js';

export function inodeServices(d: DaemonParts): InodeServices {
  // Only where a digest has a use: the content stamp, or a fleet store.
  const rounds = new WeakMap<Cancelled, DigestRound>();
  const roundOf = (signal: Cancelled): DigestRound | undefined => {
    if (d.config.tags.stamp !== 'content' && !d.fleet) return undefined;
    let r = rounds.get(signal);
    if (!r) rounds.set(signal, (r = new DigestRound(d.config.tags.stamp === 'content')));
    return r;
  };
  /** One scanner on one file (`scan` below): its slot, its context, scanWithTags (or the remote scanner). */
  const scanOne = async (machineFd: number, name: string, entry: StackEntry, served: boolean, round: DigestRound | undefined, signal: Cancelled, lane: boolean | undefined, uid: number | undefined): Promise<ScanResult> => {
    // Each scan holds its own descriptor: the machine may reach its verdict (and close its fd) while slower
    // scanners still run and write their tags. A closed, reused fd number would tag the wrong file.
    const fd = native.dupFd(machineFd);
    try {
      // A served scanner looks the store up with the pass's digest: wait for the pass, holding no slot.
      if (served) await round?.beforeLookup(name);
    } catch (err) {
      closeQuiet(fd);
      throw err;
    }
    // Observe scanners and the crawl wait for a background slot of the pool; a remote scanner uses no worker.
    const background = (lane === true || entry.control === 'observe') && entry.actor !== REMOTE_ACTOR;
    // Gating scans take their uid's turn: a flood of one uid queues behind itself (fair-slots.ts).
    const fair = !background && entry.actor !== REMOTE_ACTOR;
    if (background) await d.backgroundSlots.acquire();
    else if (fair) {
      try {
        await d.fairSlots.acquire(uid ?? 0, signal);
      } catch (err) {
        closeQuiet(fd);
        throw err;
      }
    }
    try {
      const ctx: ScanContext = {
        pool: d.pool,
        tags: d.tags,
        entry,
        generation: d.stack.generations[name],
        signal,
        timeoutMs: d.config.pool.scanTimeout,
        // Only for the scanners the store serves (src/fleet/scope.ts): a signature-only stack makes no store traffic.
        ...(served && { fleet: d.fleet!.policy }),
        ...(round && { round }),
        path: readlinkQuiet(`/proc/self/fd/${fd}`) ?? `fd:${fd}`,
        onScan: (n) => (d.counters.scans[n] = (d.counters.scans[n] ?? 0) + 1),
        onTagError: (err) => d.log.warn({ scanner: name, err: err.message }, 'tag not stored (no room or no xattr support): the verdict lives in memory only and will not survive a restart'),
      };
      // A remote entry is served by a client of the control socket, through the same lease and tag write.
      const started = performance.now();
      const result = await (entry.actor === REMOTE_ACTOR ? d.remote.scan(fd, ctx) : scanWithTags(fd, ctx));
      if (result.source === 'scan') {
        const ms = performance.now() - started;
        d.costs.scanned(ctx.path, ms, []);
        d.scanDurations.observe(name, ms / 1000);
      }
      return result;
    } finally {
      if (background) d.backgroundSlots.release();
      else if (fair) d.fairSlots.release();
      closeQuiet(fd);
    }
  };
  return {
    // Content stamp: the digest that verifies it only where a result tag can use it (a cold file has none).
    readAnswers: async (fd) => d.stack.answersOf(await d.tags.read(fd, d.stack.generations, { verifyContent: d.config.tags.stamp === 'content', digestOnlyForTags: true })),
    evaluate: (answers) => evaluate(d.stack.stack, answers),
    needed: (answers) => neededScanners(d.stack.stack, answers),
    observers: (answers) => d.stack.observers(answers),
    scan: async (machineFd, name, signal, lane, uid) => {
      const entry = d.stack.entry(name);
      if (!entry) throw new Error(`no scanner named ${name} in the stack`);
      // The round: this file's scans started with this cancel flag, joined before any of them awaits (digest-round.ts).
      const served = d.fleet !== null && d.fleetScope().served.has(name) && entry.actor !== REMOTE_ACTOR;
      const round = roundOf(signal);
      round?.join(name, { pass: isPassEntry(entry) && entry.actor !== REMOTE_ACTOR, served });
      if (!round?.isSource(name)) return scanOne(machineFd, name, entry, served, round, signal, lane, uid);
      try {
        return await scanOne(machineFd, name, entry, served, round, signal, lane, uid);
      } finally {
        round.passEnded(); // on every way out (an fd limit, an aborted wait for a slot, …): nobody waits for it in vain
      }
    },
    clearTags: (fd) => {
      try {
        return d.tags.clear(fd);
      } catch (err) {
        d.log.warn({ err }, 'could not clear tags');
        return [];
      }
    },
    answer: (w: Waiter, verdict) => {
      // Counted before the answer on purpose: the accessor is named from /proc, and once answered it may be gone.
      // (Its identity is cached per pid, so this is one readlink and one status read per process, not per access.)
      if (w.since !== undefined) d.costs.waited(w.pid, performance.now() - w.since, verdict !== 'allow');
      d.gate.native.answer(w.id, verdict === 'fallback' ? d.fallbackResponse() : verdict === 'allow' ? d.allowResponse : verdict === 'busy' ? d.retryResponse : d.denyResponse);
    },
    answeredInWorker: (w: Waiter) => {
      if (w.since !== undefined) d.costs.waited(w.pid, performance.now() - w.since, false);
    },
    bless: (fd, judged) => {
      try {
        // On the gate's answer thread, ahead of the waiters' answers (concludeAllow answers after it): the main
        // thread makes none of its syscalls (fstat, handle, mark).
        d.gate.native.queueBless(fd, judged);
      } catch (err) {
        d.log.warn({ err }, 'bless failed');
      }
    },
    stampOf: (fd) => {
      try {
        return judgedStampOf(fd);
      } catch {
        return undefined;
      }
    },
    condemn: (fd) => {
      // A cached deny is answered on the native thread, before dispatch.ts could let an exempt path or executable
      // through: with those configured, a denied file is judged (from its tags) at each access instead.
      if (exemptsAccessors(d.config.exempt)) return;
      try {
        d.gate.native.condemn(fd, d.denyResponse);
      } catch (err) {
        d.log.warn({ err }, 'condemn failed');
      }
    },
    forget: (fd) => {
      try {
        d.gate.native.forget(fd);
      } catch {
        /* gone */
      }
    },
    notify: (kind, { accessors, ...detail }) => {
      // Who waited is the cost table's business only: subscribers may be of another uid.
      if (kind === 'verdict' && typeof detail.path === 'string' && (detail.verdict === 'allow' || detail.verdict === 'deny')) d.costs.judged(detail.path, detail.verdict, Array.isArray(accessors) ? (accessors as number[]) : []);
      // Nobody listens for verdicts (the common case): no identity to read, no notice to build.
      if (kind === 'verdict' && !d.hearsVerdicts()) return;
      d.emit(buildNotice(kind, detail, d.fsids));
    },
    logDenied: ({ path, decidedBy, reason, waiters }) => {
      if (!d.logLimit.take('denied')) return;
      const who = waiters.map((w) => ({ pid: w.pid, exe: readlinkQuiet(`/proc/${w.pid}/exe`), access: w.access }));
      d.log.warn({ path, scanner: decidedBy, reason, accessors: who }, `denied ${path}: ${reason ?? 'policy'}`);
    },
    get coldPath() {
      return d.judgePolicy() !== null;
    },
    judge: (job, uid) => d.judgeQueue.submit(job, uid),
    judgeAlsoFor: (job, uid) => d.judgeQueue.alsoFor(job, uid),
    judged: (file) => {
      let ms = 0;
      // Scans are counted in the workers as they start (scan-counter.ts); only slotless ones here.
      for (const name of file.uncounted) d.counters.scans[name] = (d.counters.scans[name] ?? 0) + 1;
      for (const s of file.scans) {
        d.scanDurations.observe(s.name, s.totalMs / 1000);
        ms += s.totalMs;
      }
      if (file.scans.length > 0) d.costs.scanned(file.path, ms, []);
      for (const e of file.tagErrors) d.log.warn({ scanner: e.name, err: e.message }, 'tag not stored (no room or no xattr support): the verdict lives in memory only and will not survive a restart');
    },
    releaseLeases: (fd, names) => {
      for (const name of names) {
        try {
          d.tags.releaseHeld(fd, name);
        } catch {
          /* a file without tag support, or gone: there is no lease to give back */
        }
      }
    },
    readAnswersNow: (fd) => {
      try {
        return d.stack.answersOf(d.tags.readSync(fd, d.stack.generations));
      } catch {
        return new Map(d.stack.constantAnswers());
      }
    },
    failureAnswer: (name, failure, message, retried) => {
      const entry = d.stack.entry(name);
      if (!entry) return { answer: { answer: 'deny', reason: `no scanner named ${name} in the stack` }, transient: true };
      const r = resolveFailure({ kind: 'error', code: failure, message: `${name}: ${message}` }, entry, { retried });
      return r === RETRY ? undefined : { answer: r, transient: true };
    },
    close: (fd) => closeQuiet(fd),
    get whileWriting() {
      return d.config.gate.whileWriting;
    },
    get rescanDebounceMs() {
      return d.config.pool.rescanDebounce;
    },
    get rescan() {
      return d.config.pool.rescan;
    },
  };
}
