// Overview — the daemon: config in, a guarded system out.
//
// Owns the lifecycle: it builds the parts (tag store, scan pool, stack, inode registry, gate) in order, reloads
// the stack transactionally, reports status, and stops by answering everything pending. The hot path lives in
// dispatch.ts, what machines may ask in inode-services.ts, the tag fast path in settle-by-tags.ts, the stack and
// generations in stack-state.ts.
import { EventEmitter } from 'node:events';
import { constants as fsc, mkdirSync, openSync, fstatSync, existsSync } from 'node:fs';
import type { Config } from '../config/types.js';
import { exemptsAccessors } from '../config/glob.js';
import { Gate } from '../gate/gate.js';
import { denyErrno } from '../gate/types.js';
import { InodeRegistry, inodeKey } from '../inode/registry.js';
import { ScanPool } from '../pool/scan-pool.js';
import { JudgeQueue } from '../pool/judge-queue.js';
import type { JudgePolicy } from '../pool/tasks.js';
import { TagStore, loadTagKey, probeNamespace } from '../tags/index.js';
import { openFleet } from '../fleet/policy.js';
import { shownStoreUrl } from '../fleet/store-url.js';
import { FleetMonitor } from '../fleet/monitor.js';
import type { DaemonControl } from '../notify/daemon-control.js';
import { REMOTE_ACTOR, type RemoteScanners } from '../notify/remote-scanners.js';
import { Crawl } from './crawl.js';
import { unsupportedFilesystem } from '../gate/fs-support.js';
import { GuardedSet } from './guarded.js';
import { publishGuards, unpublishGuards } from './published-guards.js';
import { makeDemoTree } from './demo.js';
import { Dispatch } from './dispatch.js';
import { explainFile } from './explain.js';
import { GenerationWatch } from './generation-watch.js';
import { closeQuiet } from './fs-quiet.js';
import { inodeServices } from './inode-services.js';
import type { Logger } from './logger.js';
import { DaemonParts } from './parts.js';
import { FairSlots } from './fair-slots.js';
import { Semaphore } from './semaphore.js';
import { TagSettler } from './settle-by-tags.js';
import { StackState } from './stack-state.js';
import { reloadScope } from './reload-scope.js';
import type { DaemonStats, Notice } from './stats.js';

export type { DaemonStats, Notice } from './stats.js';

/** Built-in actors that scan inside the worker and start no process or connection (not exec, clamd, yara's engine). */
const IN_WORKER_ACTORS = new Set(['signature', 'default', 'allowlist', 'expected', 'integrity']);

export class Daemon extends EventEmitter {
  private readonly d: DaemonParts;
  /** Out-of-process scanners registered on the control socket (src/notify). */
  readonly remote: RemoteScanners;
  private guards: DaemonStats['guards'] = [];
  /** What the guards cover, for on-demand judging (guarded.ts). */
  private readonly guarded = new GuardedSet();
  /** Where to publish what this daemon guards, for the preload library (published-guards.ts); none by default. */
  private guardsFile?: string;
  private crawl?: Crawl;
  private fleetMonitor?: FleetMonitor;
  private settler!: TagSettler;
  private readonly crawlWaiting = new Map<string, () => void>();
  /** Processes actors pass descriptors to (clamd with FILDES), per scanner: exempt like remote scanners. */
  private readonly helperPids = new Map<string, number[]>();
  /** Actors whose generation changes outside blessd (clamd's databases), asked again on a timer. */
  private readonly generationWatch = new GenerationWatch(
    async (e) => (await this.d.pool.describe({ name: e.name, actor: e.actor, options: e.options as Record<string, unknown>, maxSize: e.maxSize })).generation,
    (name) => this.d.stack.actorGeneration(name),
    (e, generation) => this.onGenerationChange(e.name, generation),
    (e, err) => this.d.log.warn({ scanner: e.name, err: (err as Error).message }, 'could not ask the scanner its generation; keeping the old one'),
  );

  private constructor(config: Config, log: Logger) {
    super();
    this.d = new DaemonParts(config, log, (n: Notice) => this.emit('notice', n));
    this.d.hearsVerdicts = () => this.listenerCount('notice') > 0;
    // A 'notice' listener wants every verdict: the native lane (which builds none) follows who listens.
    this.on('newListener', (name) => name === 'notice' && queueMicrotask(() => this.syncLaneQueue()));
    this.on('removeListener', (name) => name === 'notice' && this.syncLaneQueue());
    this.remote = this.d.remote;
    // A scanner joined or left the socket: it may read guarded files ungated, the stack follows, and cached
    // verdicts go (a new must-pass scanner has not seen the files blessed without it).
    this.remote.setApplier(async () => {
      const d = this.d;
      if (d.stopping) return;
      try {
        this.applyExempt();
        await d.stack.apply(d.config);
        await this.forgetAll();
      } catch (err) {
        d.log.error({ err }, 'could not apply the remote scanners to the stack');
      }
    });
  }

  /** `guardsFile`: where to publish what this daemon guards (published-guards.ts); none by default. */
  static async start(config: Config, log: Logger, options: { guardsFile?: string } = {}): Promise<Daemon> {
    const d = new Daemon(config, log);
    d.guardsFile = options.guardsFile;
    try {
      await d.init();
    } catch (err) {
      await d.stop().catch(() => {});
      throw err;
    }
    return d;
  }

  private async init() {
    const d = this.d;
    const c = d.config;
    mkdirSync(c.stateDir, { recursive: true, mode: 0o700 });
    for (const g of c.guards) {
      if (g.create && !existsSync(g.path)) {
        mkdirSync(g.path, { recursive: true });
        if (g.demo) makeDemoTree(g.path);
        d.log.info({ path: g.path, demo: g.demo }, 'created guarded directory');
      }
      if (!existsSync(g.path)) throw new Error(`guards: ${g.path} does not exist (set create: true to make it)`);
      const unsupported = unsupportedFilesystem(g.path);
      if (unsupported) throw new Error(`guards: ${g.path}: ${unsupported}`);
    }
    const probe = await probeNamespace(c.guards[0].path, c.tags.namespace);
    if (probe.warning) d.log.warn({ namespace: probe.namespace }, probe.warning);
    const key = await loadTagKey(c.tags.keyFile);
    d.tags = new TagStore({ namespace: probe.namespace, key, leaseMs: c.tags.lease, stampMode: c.tags.stamp });
    d.tagKey = key;
    d.fleet = await openFleet(c.fleet);
    if (d.fleet) {
      this.fleetMonitor = new FleetMonitor(d.fleet.counters, d.log, shownStoreUrl(c.fleet.store!));
      d.log.info({ store: shownStoreUrl(c.fleet.store!), timeoutMs: c.fleet.timeout }, 'fleet store: verdicts shared by content digest');
    }
    d.denyResponse = denyErrno(c.gate.denyErrno);
    d.retryResponse = denyErrno(c.gate.retryErrno);

    d.pool = new ScanPool({
      threads: c.pool.threads,
      onHelperPids: (name, pids) => this.onHelperPids(name, pids),
      // The native lane's files never reach this thread one by one: their books come summed, once per batch.
      onLaneBooks: (b) => {
        d.costs.addLane(b);
        d.scanDurations.merge(b.durations);
      },
      onWorkerError: (err) => d.log.error({ err: err.message }, 'a pool worker died outside a task (a native lane batch): its jobs went to JS, a new worker replaces it'),
    });
    d.backgroundSlots = new Semaphore(Math.max(1, c.pool.threads - 1));
    // One more than the workers: the pool's own queue stays short, so the order is decided here, per uid.
    d.fairSlots = new FairSlots(c.pool.threads + 1);
    // One batch per worker in flight: the order is decided in the queue, per uid, not in the pool's.
    // A file queued under a stack the cold path served is judged with that stack, even if the stack has changed to
    // one it does not serve meanwhile (a remote scanner joined): as if it had been judged a moment sooner.
    let lastPolicy: JudgePolicy | undefined;
    // The native lane (lane.cc): workers conclude plain allows with the gate's id and the stack epoch of the moment,
    // only while the cold path serves the stack (not for a batch judged with the last policy it served).
    d.judgeQueue = new JudgeQueue(d.pool, c.pool.threads, () => (lastPolicy = d.judgePolicy() ?? lastPolicy)!, undefined, () =>
      d.gate && !d.stopping && d.laneEpoch > 0 && d.judgePolicy() !== null ? { gate: d.gate.native.laneId(), epoch: d.laneEpoch } : undefined,
    );
    d.stack = new StackState(d.pool, this.remote, d.log);
    this.generationWatch.watch(await d.stack.load(c));
    this.logFleetScope();

    d.svc = inodeServices(d);
    this.settler = new TagSettler(d);
    // Every inode the registry judges is JS's: the native lane queues none of its events meanwhile (lane_queue.cc).
    const owned = (key: string, claim: boolean) => {
      const gate = d.gate?.native;
      if (!gate) return;
      const at = key.indexOf(':');
      const dev = Number(key.slice(0, at));
      const ino = Number(key.slice(at + 1));
      if (claim) gate.laneClaim(dev, ino);
      else gate.laneRelease(dev, ino);
    };
    d.registry = new InodeRegistry(d.svc, (key, state) => {
      if (state === 'blessed') d.counters.verdicts.allow++;
      else if (state === 'denied') d.counters.verdicts.deny++;
      this.crawlWaiting.get(key)?.();
    }, owned);
    const dispatch = new Dispatch(d, this.settler);
    d.gate = new Gate({
      deadlineMs: c.gate.deadline,
      accessDeadlineMs: c.gate.accessDeadline,
      deadlineAnswer: c.gate.onDeadline,
      retryResponse: d.retryResponse,
      denyResponse: d.denyResponse,
      maxPending: c.gate.maxPending,
      maxPendingPerUid: c.gate.maxPendingPerUid,
      exemptUids: [...c.exempt.uids],
      audit: c.gate.audit,
      onEvents: (batch) => dispatch.onEvents(batch),
    });
    this.applyExempt();
    // From here on the reader thread settles misses whose tags decide, with the stack of the moment.
    d.stack.onApplied = () => this.syncTagPolicy();
    this.syncTagPolicy();
    for (const g of c.guards) {
      const mark = await d.gate.guard(g.path, g.kind, g.wait);
      this.guards.push({ path: g.path, kind: g.kind, mode: mark.mode, fallback: [mark.note, mark.fallback].filter(Boolean).join('; ') || undefined });
      this.guarded.add(g);
      if (!d.mountFds.has(mark.fsid)) d.mountFds.set(mark.fsid, openSync(g.path, 'r'));
      d.fsids.set(mark.dev, mark.fsid);
      d.log.info({ path: g.path, kind: g.kind, mode: mark.mode, covers: mark.covers, root: mark.root, note: mark.note }, mark.fallback ? `guarding (${mark.fallback})` : 'guarding');
    }
    // Files whose tags settle them get their entry (and ignore mark) now, on a native thread, not at first access.
    if (c.gate.settleWalk.enabled) d.gate.native.settleWalk({ filesPerSecond: c.gate.settleWalk.filesPerSecond });
    // On a native thread (map_sweep.cc): it used to cost the main thread a wake-up per maps file read.
    if (c.gate.sharedMapSweep > 0) d.gate.native.sharedMapSweep({ periodMs: c.gate.sharedMapSweep, devs: [...d.fsids.keys()] });
    if (this.guardsFile) {
      try {
        publishGuards(this.guardsFile, c.guards);
      } catch (err) {
        d.log.warn({ err, file: this.guardsFile }, 'cannot publish the guards: preloaded programs will scan these files too');
      }
    }
    if (c.crawl.enabled) {
      this.crawl = new Crawl({
        roots: c.guards.map((g) => g.path),
        filesPerSecond: c.crawl.filesPerSecond,
        pauseOnBattery: c.crawl.pauseOnBattery,
        visit: (path) => this.judgeInBackground(path),
        onDone: (s) => d.log.info({ visited: s.visited, errors: s.errors }, 'crawl done'),
      });
      this.crawl.start();
    }
  }

  private loggedScope?: string;

  /** Once per stack that changes it: which scanners the fleet store serves, and why the others make no traffic. */
  private logFleetScope() {
    const d = this.d;
    if (!d.fleet) return;
    const { scope } = d.fleetScope();
    const said = JSON.stringify(scope);
    if (said === this.loggedScope) return;
    this.loggedScope = said;
    const skipped = Object.fromEntries(scope.skipped.map((s) => [s.name, s.why]));
    if (scope.served.length === 0) d.log.info({ skipped }, 'fleet store: no store traffic for this stack: none of its scanners is one a store hit would spare (docs/fleet.md)');
    else d.log.info({ served: scope.served, skipped }, 'fleet store: shared verdicts for these scanners');
  }

  /** Hand the native reader the stack, generations and key it settles misses with (after every change of them). */
  private syncTagPolicy() {
    const d = this.d;
    // Exempt paths and executables are matched on this thread (dispatch.ts): the native thread must not settle a
    // denied tag before that match (nor walk ahead and cache the deny).
    const policy = exemptsAccessors(d.config.exempt) ? null : d.stack.nativePolicy(d.config, d.tagKey, d.tags.namespace, d.denyResponse);
    d.gate?.native.setTagPolicy(policy);
    d.nativeSettles = d.gate !== undefined && policy !== null;
    // Every change of stack, generations or config: judgements from before are not concluded by a worker (lane.cc).
    d.laneEpoch = (d.laneEpoch % 0xfffffff) + 1;
    d.gate?.native.setLane(d.stopping ? 0 : d.laneEpoch);
    this.laneAnnounced = 0;
    this.syncLaneQueue();
  }

  /** The epoch whose policy the workers were told (ScanPool.announceLane); 0: none since the last bump. */
  private laneAnnounced = 0;

  /**
   * The native lane queue (native/fanotify/lane_queue.cc): the reader thread queues cold inodes for the pool's
   * workers, and the main thread never sees the files concluded there. Only where nothing the main thread does per
   * file is needed: the cold path serves the stack, no exempt executables or paths (matched here, dispatch.ts), and
   * nobody hears verdict notices (built here). Otherwise every event goes to JS, as before.
   */
  private syncLaneQueue() {
    const d = this.d;
    const gate = d.gate?.native;
    if (!gate) return;
    const policy = d.stopping || d.laneEpoch === 0 || exemptsAccessors(d.config.exempt) || d.hearsVerdicts() ? null : d.judgePolicy();
    // A lane batch cannot be given up the way a pool task is (its worker destroyed, its scans' process groups
    // killed: scan-pool.ts): only scanners that run in the worker itself and start no process take the lane.
    if (!policy || !policy.scanners.every((s) => IN_WORKER_ACTORS.has(s.actor))) return gate.setLaneQueue(null);
    if (this.laneAnnounced !== d.laneEpoch) {
      d.pool.announceLane(d.laneEpoch, policy);
      this.laneAnnounced = d.laneEpoch;
    }
    gate.setLaneQueue({ pool: d.pool.lanePool, perUid: d.config.pool.queuePerUid, refusal: d.retryResponse });
  }

  /** The crawl's visit: judge one file now, with nobody waiting; resolves at its verdict. */
  private judgeInBackground(path: string): Promise<void> {
    const d = this.d;
    if (d.stopping) return Promise.resolve();
    // Our own open is allowed on the native thread; O_NOATIME keeps the crawl invisible to atime watchers.
    const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOATIME);
    const st = fstatSync(fd);
    const key = inodeKey(st.dev, st.ino);
    if (!st.isFile() || d.registry.has(key) || this.settler.settle(fd)) {
      closeQuiet(fd);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.crawlWaiting.set(key, () => {
        this.crawlWaiting.delete(key);
        resolve();
      });
      d.registry.ensure(key, fd, { background: true });
    });
  }

  /** A watched actor's generation moved (clamd loaded new databases): its older tags are stale from now on. */
  private async onGenerationChange(name: string, generation: string) {
    const d = this.d;
    if (d.stopping) return;
    const before = d.stack.actorGeneration(name);
    await d.stack.setActorGeneration(d.config, name, generation);
    // Files blessed under the old generation carry ignore marks and native verdicts: forget them all, so that each
    // is judged again (from its tags, now stale for this scanner) at its next access.
    await this.forgetAll();
    d.log.info({ scanner: name, from: before, to: generation }, 'scanner generation changed: its older verdicts are stale');
    this.emit('generation', { scanner: name, generation });
  }

  private onHelperPids(name: string, pids: number[]) {
    const old = this.helperPids.get(name);
    if (old && old.length === pids.length && old.every((p, i) => p === pids[i])) return;
    this.helperPids.set(name, pids);
    this.applyExempt();
  }

  /** Pids the gate lets through on its own thread: registered remote scanners and actors' helper processes. */
  private applyExempt() {
    const pids = new Set<number>(this.remote.pids());
    for (const list of this.helperPids.values()) for (const p of list) pids.add(p);
    this.d.gate?.native.setExempt([...pids], [...this.d.config.exempt.uids]);
  }

  // ---- control ------------------------------------------------------------------------------------------------

  stats(): DaemonStats {
    const d = this.d;
    return {
      gate: d.gate.native.stats(),
      scans: d.scansStarted(),
      scanDurations: d.scanDurations.snapshot(),
      // Files the native lane concluded (lane_queue.cc) never reach the main thread: counted by the gate.
      verdicts: { ...d.counters.verdicts, allow: d.counters.verdicts.allow + (d.gate?.native.stats().laneJobsConcluded ?? 0) },
      judgeQueue: d.judgeQueue.stats(),
      machines: d.registry.size,
      machineStates: d.registry.states(),
      guards: this.guards,
      errors: d.counters.errors,
      refusedPerUid: d.counters.refusedPerUid,
      crawl: this.crawl ? { ...this.crawl.stats } : undefined,
      ...(d.fleet && { fleet: d.fleet.counters.snapshot() }),
    };
  }

  /** Every cached verdict forgotten, the kernel's marks too (Gate.forgetAll), before the caller goes on. */
  private async forgetAll(): Promise<void> {
    const gate = this.d.gate;
    if (gate && !(await gate.forgetAll())) this.d.log.warn({ forgets: gate.native.stats().forgetsAsked }, 'forgetting every verdict: the kernel\'s marks are not all cleared after 30 s; files blessed before may stay silent until they are');
  }

  /**
   * SIGHUP: a new config replaces the stack transactionally; a bad one keeps the old. The stack, must-pass, exempt,
   * pool limits and log level apply now; the start-only keys it changes (reload-scope.ts) keep their started value,
   * are logged, and are returned, so that the caller can say a restart is needed.
   */
  async reload(next: Config): Promise<{ restartNeeded: string[] }> {
    const d = this.d;
    const before = d.stack.snapshot();
    try {
      const watched = await d.stack.load(next);
      // Replaced only once the new stack stands: a failed reload keeps watching the old one.
      this.generationWatch.watch(watched);
      // A scanner the new stack no longer names: its instances in the workers close now, not at the daemon's stop.
      d.pool.retainOnly(d.stack.stack.filter((e) => e.actor !== REMOTE_ACTOR).map((e) => ({ name: e.name, actor: e.actor, options: e.options as Record<string, unknown> })));
      const { config, restartNeeded } = reloadScope(d.config, next);
      d.config = config;
      d.log.level = config.log.level;
      this.syncTagPolicy();
      this.applyExempt();
      this.logFleetScope();
      // Cached verdicts came from the old stack: judge every file again from its tags (valid answers are reused).
      await this.forgetAll();
      if (restartNeeded.length > 0) d.log.warn({ restartNeeded }, `configuration reloaded; not applied until the next restart: ${restartNeeded.join(', ')}`);
      else d.log.info('configuration reloaded');
      return { restartNeeded };
    } catch (err) {
      d.stack.restore(before);
      throw err;
    }
  }

  /**
   * Verdict notices cost an fstat and a file handle per judged file: built only while someone hears them — a
   * 'notice' listener besides the socket server, or what `heard` says (the server: a verdict subscriber, a scan
   * request waiting). Until this is called: while anyone listens to 'notice'.
   */
  verdictsHeardWhen(heard: () => boolean): void {
    this.d.hearsVerdicts = () => this.listenerCount('notice') > 1 || heard();
    this.syncLaneQueue();
  }

  /** What the socket server may ask (src/notify/daemon-control.ts). */
  control(): DaemonControl {
    const d = this.d;
    return {
      hearingChanged: () => this.syncLaneQueue(),
      config: () => d.config,
      stack: () => d.stack.stack,
      generations: () => d.stack.generations,
      stats: () => this.stats(),
      pool: () => {
        // The cold path's files wait in the judge queue (one batch per worker in flight), not in Piscina's.
        const p = d.pool.stats();
        const j = d.judgeQueue.stats();
        return { ...p, queued: p.queued + j.waiting };
      },
      readTags: (fd) => d.tags.read(fd, d.stack.generations, { verifyContent: d.config.tags.stamp === 'content' }),
      covers: (fd) => this.guarded.covers(fd),
      explain: (fd, path, opts) => explainFile(d, fd, path, opts),
      costs: (by, top, sort) => d.costs.top(by, top, sort),
      judge: (fd) => {
        const st = fstatSync(fd);
        const created = !d.stopping && d.registry.ensure(inodeKey(st.dev, st.ino), fd);
        if (!created) closeQuiet(fd);
        return created;
      },
      refreshGenerations: async () => {
        await d.stack.apply(d.config);
        await this.forgetAll();
      },
      remote: this.remote,
    };
  }

  /** Answer everything pending, remove every mark (closing the groups does), stop the pool. */
  async stop(): Promise<void> {
    const d = this.d;
    if (d.stopping) return;
    d.stopping = true;
    d.gate?.native.setLane(0); // no worker concludes from here on: the gate answers what is pending as it closes
    d.gate?.native.setLaneQueue(null);
    this.generationWatch.stop();
    if (this.guardsFile) unpublishGuards(this.guardsFile);
    this.crawl?.stop();
    d.gate?.close();
    this.fleetMonitor?.stop();
    d.judgeQueue?.close();
    d.registry?.stopAll();
    for (const fd of d.mountFds.values()) closeQuiet(fd);
    d.mountFds.clear();
    await d.pool?.close();
  }
}
