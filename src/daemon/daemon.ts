// Overview — the daemon: config in, a guarded system out.
//
// Owns the gate, the tag store, the scan pool and the inode registry. The hot path is onEvents(): everything the
// native reader thread could not answer alone arrives here in batches, and each permission event is either answered
// at once (exempt, nfsd) or handed to its inode machine, which answers it at the verdict. If anything here throws,
// the event is answered on the spot: no path leaves a permission event to the deadline by mistake.
import { EventEmitter } from 'node:events';
import { constants as fsc, mkdirSync, openSync, closeSync, fstatSync, readlinkSync, readFileSync, existsSync } from 'node:fs';
import type { Config, StackEntry } from '../config/types.js';
import { isExemptPath } from '../config/glob.js';
import { native } from '../gate/addon.js';
import { Gate } from '../gate/gate.js';
import { FAN_ALLOW, FAN_DENY, MASK, denyErrno, type GateEvent } from '../gate/types.js';
import { InodeRegistry, inodeKey } from '../inode/registry.js';
import type { AccessKind, InodeServices, Waiter } from '../inode/services.js';
import type { Answer } from '../policy/answer.js';
import { effectiveStack } from '../policy/must-pass.js';
import { evaluate, neededScanners } from '../policy/stack.js';
import { ScanPool } from '../pool/scan-pool.js';
import { TagStore, currentGenerations, loadTagKey, probeNamespace, type TagReport } from '../tags/index.js';
import type { DaemonControl } from '../notify/daemon-control.js';
import { buildNotice } from '../notify/file-identity.js';
import { REMOTE_ACTOR, RemoteScanners, remoteGeneration } from '../notify/remote-scanners.js';
import { Crawl } from './crawl.js';
import { makeDemoTree } from './demo.js';
import type { Logger } from './logger.js';
import { scanWithTags, type ScanContext } from './scan-service.js';
import { Semaphore } from './semaphore.js';

export interface Notice {
  event: 'dirty' | 'verdict';
  time: number;
  [k: string]: unknown;
}

export interface DaemonStats {
  gate: ReturnType<Gate['native']['stats']>;
  scans: Record<string, number>;
  verdicts: { allow: number; deny: number };
  machines: number;
  machineStates: Record<string, number>;
  guards: { path: string; kind: string; mode: string; fallback?: string }[];
  errors: number;
  crawl?: { visited: number; errors: number; running: boolean; pausedOnBattery: boolean };
}

const CONTENT_CHANGE = MASK.MODIFY | MASK.CLOSE_WRITE;
/** How long an open notice waits before judging: long enough for the opener's fd to show in /proc. */
const NOTICE_SETTLE_MS = 2;

export class Daemon extends EventEmitter {
  private gate!: Gate;
  private pool!: ScanPool;
  private tags!: TagStore;
  private registry!: InodeRegistry;
  private stack: StackEntry[] = [];
  private generations: Record<string, string> = {};
  /** The stack from config + must-pass, and its actors' generations, before remote scanners join (applyStack). */
  private configStack: StackEntry[] = [];
  private actorGenerations: Record<string, string> = {};
  private readonly fsids = new Map<number, string>(); // st_dev -> fsid hex, for notices
  /** Out-of-process scanners registered on the control socket (src/notify). */
  readonly remote = new RemoteScanners(this.fsids);
  private readonly mountFds = new Map<string, number>(); // fsid -> directory fd, for open_by_handle_at
  private readonly scans: Record<string, number> = {};
  private readonly verdicts = { allow: 0, deny: 0 };
  private guards: DaemonStats['guards'] = [];
  private errors = 0;
  private stopping = false;
  private crawl?: Crawl;
  private svc!: InodeServices;
  /** Inodes the tag fast path settled lately, so that the open notice of the same access does not judge them again. */
  private readonly recentlySettled = new Set<string>();
  private readonly crawlWaiting = new Map<string, () => void>();
  private allowResponse = FAN_ALLOW;
  /** Observe scanners (and the crawl) never take the last worker: gating scans must not queue behind them. */
  private backgroundSlots = new Semaphore(1);
  private denyResponse = FAN_DENY;

  private constructor(
    private config: Config,
    private readonly log: Logger,
  ) {
    super();
    // A scanner joined or left the socket: it may read guarded files ungated, the stack follows, and cached
    // verdicts go (a new must-pass scanner has not seen the files blessed without it).
    this.remote.setApplier(async () => {
      if (this.stopping) return;
      try {
        this.gate?.native.setExempt(this.remote.pids(), [...this.config.exempt.uids]);
        await this.applyStack(this.config);
        this.gate?.native.forgetAll();
      } catch (err) {
        this.log.error({ err }, 'could not apply the remote scanners to the stack');
      }
    });
  }

  static async start(config: Config, log: Logger): Promise<Daemon> {
    const d = new Daemon(config, log);
    try {
      await d.init();
    } catch (err) {
      await d.stop().catch(() => {});
      throw err;
    }
    return d;
  }

  private async init() {
    const c = this.config;
    mkdirSync(c.stateDir, { recursive: true, mode: 0o700 });
    for (const g of c.guards) {
      if (g.create && !existsSync(g.path)) {
        mkdirSync(g.path, { recursive: true });
        if (g.demo) makeDemoTree(g.path);
        this.log.info({ path: g.path, demo: g.demo }, 'created guarded directory');
      }
      if (!existsSync(g.path)) throw new Error(`guards: ${g.path} does not exist (set create: true to make it)`);
    }
    const probe = await probeNamespace(c.guards[0].path, c.tags.namespace);
    if (probe.warning) this.log.warn({ namespace: probe.namespace }, probe.warning);
    const key = await loadTagKey(c.tags.keyFile);
    this.tags = new TagStore({ namespace: probe.namespace, key, leaseMs: c.tags.lease, stampMode: c.tags.stamp });
    this.denyResponse = denyErrno(c.gate.denyErrno);

    this.pool = new ScanPool({ threads: c.pool.threads });
    this.backgroundSlots = new Semaphore(Math.max(1, c.pool.threads - 1));
    await this.loadStack(c);

    this.svc = this.services();
    this.registry = new InodeRegistry(this.svc, (key, state) => {
      if (state === 'blessed') this.verdicts.allow++;
      else if (state === 'denied') this.verdicts.deny++;
      this.crawlWaiting.get(key)?.();
    });
    this.gate = new Gate({
      deadlineMs: c.gate.deadline,
      deadlineAnswer: c.gate.onDeadline,
      maxPending: c.gate.maxPending,
      exemptUids: [...c.exempt.uids],
      audit: c.gate.audit,
      onEvents: (batch) => this.onEvents(batch),
    });
    for (const g of c.guards) {
      const mark = await this.gate.guard(g.path, g.kind, g.wait);
      this.guards.push({ path: g.path, kind: g.kind, mode: mark.mode, fallback: [mark.note, mark.fallback].filter(Boolean).join('; ') || undefined });
      if (!this.mountFds.has(mark.fsid)) this.mountFds.set(mark.fsid, openSync(g.path, 'r'));
      this.fsids.set(mark.dev, mark.fsid);
      this.log.info({ path: g.path, kind: g.kind, mode: mark.mode, covers: mark.covers, root: mark.root, note: mark.note }, mark.fallback ? `guarding (${mark.fallback})` : 'guarding');
    }
    if (c.crawl.enabled) {
      this.crawl = new Crawl({
        roots: c.guards.map((g) => g.path),
        filesPerSecond: c.crawl.filesPerSecond,
        pauseOnBattery: c.crawl.pauseOnBattery,
        visit: (path) => this.judgeInBackground(path),
        onDone: (s) => this.log.info({ visited: s.visited, errors: s.errors }, 'crawl done'),
      });
      this.crawl.start();
    }
  }

  /** The crawl's visit: judge one file now, with nobody waiting; resolves at its verdict. */
  private judgeInBackground(path: string): Promise<void> {
    if (this.stopping) return Promise.resolve();
    // Our own open is allowed on the native thread; O_NOATIME keeps the crawl invisible to atime watchers.
    const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOATIME);
    const st = fstatSync(fd);
    const key = inodeKey(st.dev, st.ino);
    if (!st.isFile() || this.registry.has(key) || this.settledByTags(fd)) {
      closeQuiet(fd);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.crawlWaiting.set(key, () => {
        this.crawlWaiting.delete(key);
        resolve();
      });
      this.registry.ensure(key, fd, { background: true });
    });
  }

  /** The stack (config + must-pass directory) and each scanner's current tag generation. */
  private async loadStack(c: Config) {
    const { stack, warnings } = await effectiveStack(c);
    for (const w of warnings) this.log.warn({ where: (w as any).path ?? (w as any).origin }, (w as any).message ?? String(w));
    const actorGenerations: Record<string, string> = {};
    for (const e of stack) {
      if (e.actor === REMOTE_ACTOR) {
        actorGenerations[e.name] = remoteGeneration(e); // served over the socket: nothing to load in the pool
        continue;
      }
      const d = await this.pool.describe({ name: e.name, actor: e.actor, options: e.options as Record<string, unknown>, maxSize: e.maxSize });
      for (const w of d.warnings) this.log.warn({ scanner: e.name }, w);
      actorGenerations[e.name] = d.generation;
    }
    await this.applyStack(c, stack, actorGenerations);
    this.log.info({ stack: this.stack.map((e) => `${e.name}:${e.control}`) }, 'policy stack loaded');
  }

  /** The effective stack: config + must-pass + remote scanners registered now; generations with bump counters. */
  private async applyStack(c: Config, configStack = this.configStack, actorGenerations = this.actorGenerations) {
    const stack = this.remote.stackWith(configStack);
    const remoteGens = Object.fromEntries(stack.filter((e) => e.actor === REMOTE_ACTOR).map((e) => [e.name, remoteGeneration(e)]));
    this.generations = await currentGenerations(c.stateDir, { ...actorGenerations, ...remoteGens });
    this.stack = stack;
    this.configStack = configStack;
    this.actorGenerations = actorGenerations;
  }

  // ---- the hot path -------------------------------------------------------------------------------------------

  private onEvents(batch: GateEvent[]) {
    for (const ev of batch) {
      try {
        if (ev.kind === 'perm') this.onPermission(ev);
        else if (ev.kind === 'open') this.onOpenNotice(ev);
        else if (ev.kind === 'change') this.onChange(ev);
        else this.log.warn('kernel queue overflow: every cached verdict was dropped; tags on disk still hold');
      } catch (err) {
        this.errors++;
        if (ev.kind === 'perm') this.gate.native.answer(ev.id, this.config.gate.onDeadline === 'allow' ? FAN_ALLOW : this.denyResponse);
        if (ev.kind === 'open') this.gate.native.release(ev.fd);
        this.log.error({ err, event: ev.kind, pid: ev.pid }, 'event handling failed; answered it on the spot');
      }
    }
  }

  private onPermission(ev: GateEvent) {
    if (this.stopping || this.isExempt(ev)) {
      this.gate.native.answer(ev.id, FAN_ALLOW);
      return;
    }
    const key = inodeKey(ev.dev, ev.ino);
    const waiter: Waiter = { id: ev.id, pid: ev.pid, access: accessOf(ev.mask) };
    if (!this.registry.has(key)) {
      if (this.settledByTags(ev.fd, waiter, key)) return;
      this.registry.ensure(key, native.dupFd(ev.fd));
    }
    if (isNfsd(ev.pid)) {
      // A kernel nfsd thread must not sit in our wait: EAGAIN makes it answer NFS4ERR_DELAY and the client retries.
      this.gate.native.answer(ev.id, denyErrno('EAGAIN'));
      return;
    }
    this.registry.access(key, waiter);
  }

  private onOpenNotice(ev: GateEvent) {
    // Read mode: someone opened an unjudged file. Judge it now so that its first read finds a verdict — unless the
    // opener is a writer: its writes will dirty the file, and the rescan follows its close. The opener's fd is
    // installed a moment after the kernel queues the notice, hence the short wait before asking /proc who it is.
    // A reader loses nothing by it: its first read creates the machine at once.
    const key = inodeKey(ev.dev, ev.ino);
    let fd = -1;
    try {
      if (!this.stopping && !this.registry.has(key) && !this.isExempt(ev)) fd = native.dupFd(ev.fd);
    } finally {
      this.gate.native.release(ev.fd);
    }
    if (fd < 0) return;
    setTimeout(() => {
      try {
        const judged = this.registry.has(key) || this.recentlySettled.has(key);
        if (this.stopping || judged || native.processWritesInode(ev.pid, ev.dev, ev.ino) || this.settledByTags(fd, undefined, key)) closeQuiet(fd);
        else this.registry.ensure(key, fd);
      } catch (err) {
        closeQuiet(fd);
        this.log.error({ err }, 'could not start judging an opened file; its first read will');
      }
    }, NOTICE_SETTLE_MS);
  }

  private onChange(ev: GateEvent) {
    if (!(ev.mask & CONTENT_CHANGE) || (ev.mask & MASK.ONDIR) || !ev.resolved) return;
    const key = inodeKey(ev.dev, ev.ino);
    const closed = (ev.mask & MASK.CLOSE_WRITE) !== 0;
    if (this.registry.change(key, closed)) return;
    // No machine: the file may still carry tags and a native verdict. A machine born dirty clears them, tells the
    // subscribers, and rescans once the writer closes.
    this.gate.native.forgetInode(ev.dev, ev.ino);
    const fd = this.openByHandle(ev);
    if (fd === undefined) return;
    this.registry.ensure(key, fd, { dirty: true });
    if (closed) this.registry.change(key, true);
  }

  private openByHandle(ev: GateEvent): number | undefined {
    const mountFd = ev.fsid ? this.mountFds.get(ev.fsid) : undefined;
    if (mountFd === undefined || !ev.handle || ev.handleType === undefined) return undefined;
    try {
      return native.openByHandle(mountFd, ev.handleType, ev.handle, 0 /* O_RDONLY */);
    } catch {
      return undefined; // deleted meanwhile (ESTALE): nothing left to clear
    }
  }

  private isExempt(ev: GateEvent): boolean {
    const { executables, pathMatchers } = this.config.exempt;
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

  // ---- what the inode machines may ask ------------------------------------------------------------------------

  private services(): InodeServices {
    const self = this;
    const stackRules = () => this.stack;
    return {
      readAnswers: async (fd) => this.answersOf(await this.tags.read(fd, this.generations, { verifyContent: this.config.tags.stamp === 'content' })),
      evaluate: (answers) => evaluate(stackRules(), answers),
      needed: (answers) => neededScanners(stackRules(), answers),
      observers: (answers) => this.stack.filter((e) => e.control === 'observe' && !answers.has(e.name)).map((e) => e.name),
      scan: async (machineFd, name, signal, lane) => {
        const entry = this.stack.find((e) => e.name === name);
        if (!entry) throw new Error(`no scanner named ${name} in the stack`);
        // Each scan holds its own descriptor: the machine may reach its verdict (and close its fd) while slower
        // scanners still run and write their tags. A closed, reused fd number would tag the wrong file.
        const fd = native.dupFd(machineFd);
        // Observe scanners and the crawl wait for a background slot of the pool; a remote scanner uses no worker.
        const background = (lane === true || entry.control === 'observe') && entry.actor !== REMOTE_ACTOR;
        if (background) await this.backgroundSlots.acquire();
        try {
          const ctx: ScanContext = {
            pool: this.pool,
            tags: this.tags,
            entry,
            generation: this.generations[name],
            signal,
            timeoutMs: this.config.pool.scanTimeout,
            path: readlinkQuiet(`/proc/self/fd/${fd}`) ?? `fd:${fd}`,
            onScan: (n) => (this.scans[n] = (this.scans[n] ?? 0) + 1),
            onTagError: (err) => this.log.warn({ scanner: name, err: err.message }, 'tag not stored (no room or no xattr support): the verdict lives in memory only and will not survive a restart'),
          };
          // A remote entry is served by a client of the control socket, through the same lease and tag write.
          return await (entry.actor === REMOTE_ACTOR ? this.remote.scan(fd, ctx) : scanWithTags(fd, ctx));
        } finally {
          if (background) this.backgroundSlots.release();
          closeQuiet(fd);
        }
      },
      clearTags: (fd) => {
        try {
          return this.tags.clear(fd);
        } catch (err) {
          this.log.warn({ err }, 'could not clear tags');
          return [];
        }
      },
      answer: (w: Waiter, verdict) => {
        if (verdict === 'fallback') verdict = this.config.gate.onDeadline;
        this.gate.native.answer(w.id, verdict === 'allow' ? this.allowResponse : verdict === 'busy' ? denyErrno('EAGAIN') : this.denyResponse);
      },
      bless: (fd) => {
        try {
          this.gate.native.bless(fd);
        } catch (err) {
          this.log.warn({ err }, 'bless failed');
        }
      },
      condemn: (fd) => {
        try {
          this.gate.native.condemn(fd, this.denyResponse);
        } catch (err) {
          this.log.warn({ err }, 'condemn failed');
        }
      },
      forget: (fd) => {
        try {
          this.gate.native.forget(fd);
        } catch {
          /* gone */
        }
      },
      notify: (kind, detail) => this.emit('notice', buildNotice(kind, detail, this.fsids) satisfies Notice),
      logDenied: ({ path, decidedBy, reason, waiters }) => {
        const who = waiters.map((w) => ({ pid: w.pid, exe: readlinkQuiet(`/proc/${w.pid}/exe`), access: w.access }));
        this.log.warn({ path, scanner: decidedBy, reason, accessors: who }, `denied ${path}: ${reason ?? 'policy'}`);
      },
      get whileWriting() {
        return self.config.gate.whileWriting;
      },
      get rescanDebounceMs() {
        return self.config.pool.rescanDebounce;
      },
    };
  }

  /** The stack's answers a file already holds: valid result tags, plus the constant ones. */
  private answersOf(report: TagReport): Map<string, Answer> {
    // The built-in `default` answers the same for every file: no scan, no tag, no trip to a worker.
    const answers = new Map<string, Answer>(this.constantAnswers());
    const names = new Set(this.stack.map((e) => e.name));
    for (const t of report.tags) {
      if (t.judgement === 'valid' && t.value?.kind === 'result' && names.has(t.scanner)) {
        answers.set(t.scanner, t.value.reason === undefined ? { answer: t.value.answer } : { answer: t.value.answer, reason: t.value.reason });
      }
    }
    return answers;
  }

  /**
   * The fast path for a file nobody is working on: when its tags alone settle the verdict (a restart, a reload, an
   * evicted ignore mark), answer and cache it now — no machine, no scan. Content mode needs a digest: not here.
   */
  private settledByTags(fd: number, waiter?: Waiter, key?: string): boolean {
    if (this.config.tags.stamp === 'content') return false;
    let answers: Map<string, Answer>;
    try {
      answers = this.answersOf(this.tags.readSync(fd, this.generations));
    } catch {
      return false; // no tags to read here: the machine will scan
    }
    const v = evaluate(this.stack, answers);
    if (v.verdict === 'pending' || this.svc.observers(answers).length > 0) return false;
    const path = readlinkQuiet(`/proc/self/fd/${fd}`) ?? `fd:${fd}`;
    // The open notice of the same access may still be on its way (it waits NOTICE_SETTLE_MS): spare it the work.
    if (key) {
      if (this.recentlySettled.size > 4096) this.recentlySettled.clear();
      this.recentlySettled.add(key);
    }
    if (v.verdict === 'allow') {
      this.svc.bless(fd);
      if (waiter) this.svc.answer(waiter, 'allow');
      this.verdicts.allow++;
    } else {
      this.svc.condemn(fd);
      if (waiter) this.svc.answer(waiter, 'deny');
      this.verdicts.deny++;
      this.svc.logDenied({ path, decidedBy: v.decidedBy, reason: v.reason, waiters: waiter ? [waiter] : [] });
    }
    this.svc.notify('verdict', { fd, path, verdict: v.verdict, decidedBy: v.decidedBy, reason: v.reason, fromTags: true });
    return true;
  }

  /** Answers that need no scan: built-in `default` entries (their answer is their option). */
  private constantAnswers(): [string, Answer][] {
    return this.stack
      .filter((e) => e.builtin && e.actor === 'default' && (e.options['answer'] === 'allow' || e.options['answer'] === 'deny'))
      .map((e) => [e.name, { answer: e.options['answer'] as 'allow' | 'deny', reason: 'default' }]);
  }

  // ---- control ------------------------------------------------------------------------------------------------

  stats(): DaemonStats {
    return {
      gate: this.gate.native.stats(),
      scans: { ...this.scans },
      verdicts: { ...this.verdicts },
      machines: this.registry.size,
      machineStates: this.registry.states(),
      guards: this.guards,
      errors: this.errors,
      crawl: this.crawl ? { ...this.crawl.stats } : undefined,
    };
  }

  /** SIGHUP: a new config replaces the stack transactionally; a bad one keeps the old. Gate settings need a restart. */
  async reload(next: Config): Promise<void> {
    const before = { stack: this.stack, generations: this.generations, configStack: this.configStack, actorGenerations: this.actorGenerations };
    try {
      await this.loadStack(next);
      this.config = { ...next, gate: this.config.gate, guards: this.config.guards } as Config;
      // Cached verdicts came from the old stack: judge every file again from its tags (valid answers are reused).
      this.gate.native.forgetAll();
      this.log.info('configuration reloaded (guards and gate settings take effect at the next restart)');
    } catch (err) {
      Object.assign(this, before);
      throw err;
    }
  }

  /** What the socket server may ask (src/notify/daemon-control.ts). */
  control(): DaemonControl {
    return {
      config: () => this.config,
      stack: () => this.stack,
      generations: () => this.generations,
      stats: () => this.stats(),
      pool: () => this.pool.stats(),
      readTags: (fd) => this.tags.read(fd, this.generations, { verifyContent: this.config.tags.stamp === 'content' }),
      judge: (fd) => {
        const st = fstatSync(fd);
        const created = !this.stopping && this.registry.ensure(inodeKey(st.dev, st.ino), fd);
        if (!created) closeQuiet(fd);
        return created;
      },
      refreshGenerations: async () => {
        await this.applyStack(this.config);
        this.gate.native.forgetAll();
      },
      remote: this.remote,
    };
  }

  /** Answer everything pending, remove every mark (closing the groups does), stop the pool. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.crawl?.stop();
    this.gate?.close();
    this.registry?.stopAll();
    for (const fd of this.mountFds.values()) closeQuiet(fd);
    this.mountFds.clear();
    await this.pool?.close();
  }
}

function accessOf(mask: number): AccessKind {
  if (mask & MASK.OPEN_EXEC_PERM) return 'exec';
  if (mask & MASK.PRE_ACCESS) return 'read';
  return 'open';
}

function readlinkQuiet(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

function closeQuiet(fd: number) {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}

// Whether a pid is a kernel nfsd thread, cached briefly: it is asked for every forwarded permission event.
const nfsdCache = new Map<number, { nfsd: boolean; until: number }>();
function isNfsd(pid: number): boolean {
  const now = Date.now();
  const hit = nfsdCache.get(pid);
  if (hit && hit.until > now) return hit.nfsd;
  let nfsd = false;
  try {
    nfsd = readFileSync(`/proc/${pid}/comm`, 'latin1').startsWith('nfsd');
  } catch {
    /* gone */
  }
  if (nfsdCache.size > 4096) nfsdCache.clear();
  nfsdCache.set(pid, { nfsd, until: now + 2000 });
  return nfsd;
}
