// Overview — a judge task in a worker: a batch of files, each judged end to end here instead of on the main thread.
// Per file: its tags are read and judged, the stack is walked, and the scanners it still needs run at once, each
// taking its lease, scanning and writing its result with the conditional bless (TagStore, the same code the main
// thread uses; the addon is a Node-API module, loadable in every worker). The file is handed back as soon as the
// stack can decide: a slower scanner goes on in this worker and writes its tag after. With the fleet store, a
// content pass among the scanners (content-pass.ts) hashes the file for the others' lookup (src/fleet/share.ts).
//
// What it leaves to the main thread (the file's `slow` list): a live lease of someone else (waiting it out would
// hold the batch) and content that changed under the scan (its change event is on the way; the main thread's
// scan-service retries). It never closes a descriptor (they are the daemon's), never answers the kernel, and never
// throws to Piscina: a failure of an actor is an answer by the entry's failure policy, as on the main thread.
import { existsSync, writeFileSync } from 'node:fs';
import { FleetFile } from '../fleet/share.js';
import { native } from '../gate/addon.js';
import type { Answer } from '../policy/answer.js';
import { evaluate, neededScanners } from '../policy/stack.js';
import { readStamp, readStampAndCtime, type Stamp } from '../tags/stamp.js';
import { TagStore } from '../tags/store.js';
import { scanWith } from './actor-scan.js';
import { isContentPass, type DigestSink } from './content-pass.js';
import { resolveFailure, RETRY } from './failure.js';
import { policyOf } from './policy-wire.js';
import { countScan } from './scan-counter.js';
import { loadActor, type LoadedActor } from './load-actor.js';
import type { ScanOutcome } from './scan-pool.js';
import { SLOT_BEGUN, SLOT_GROUPS_AT, SLOT_PICKED, type JudgedFile, type JudgePolicy, type JudgeResult, type JudgeScanner, type JudgeTask } from './tasks.js';

/** One tag store per settings (namespace, key, lease, stamp mode): it keeps the leases this worker holds. */
const stores = new Map<string, TagStore>();

function storeFor(t: JudgePolicy['tags']): TagStore {
  const key = Buffer.from(t.key.buffer, t.key.byteOffset, t.key.byteLength);
  const id = `${t.namespace}\0${t.leaseMs}\0${t.stampMode}\0${key.toString('hex')}`;
  let store = stores.get(id);
  if (!store) {
    store = new TagStore({ namespace: t.namespace, key, leaseMs: t.leaseMs, stampMode: t.stampMode });
    stores.set(id, store);
  }
  return store;
}

/** What every batch under one policy shares, found once per policy: its tag store, its scanners by name, the names
 * whose tags count (the stack's), and the constant answers every file starts from. */
interface Derived {
  store: TagStore;
  scanners: Map<string, JudgeScanner>;
  counted: Set<string>;
  constants: [string, Answer][];
}
const derived = new WeakMap<JudgePolicy, Derived>();

function derivedOf(policy: JudgePolicy): Derived {
  let d = derived.get(policy);
  if (!d) {
    d = {
      store: storeFor(policy.tags),
      scanners: new Map(policy.scanners.map((s) => [s.name, s])),
      counted: new Set(policy.rules.map((r) => r.name)),
      constants: policy.rules.flatMap((r): [string, Answer][] => (r.constant ? [[r.name, r.constant]] : [])),
    };
    derived.set(policy, d);
  }
  return d;
}

/** For display (logs, notices, the cost table): native, one readlinkat on a kept /proc/self/fd (fd_path.cc says why). */
function pathOf(fd: number): string {
  return native.fdPath(fd) ?? `fd:${fd}`;
}

type Scanned = { kind: 'answer'; answer: Answer; transient: boolean } | { kind: 'slow' };

interface BatchContext extends Derived {
  task: JudgeTask;
  policy: JudgePolicy;
  /** The task's start times (SLOT_PICKED, SLOT_BEGUN). */
  times: Float64Array;
  groups: Int32Array;
  helperPids: Record<string, number[]>;
  /** Scanners whose loaded instance is a content pass (content-pass.ts): the fleet digest's source, when asked. */
  passes: Set<string>;
}

export async function judgeBatch(task: JudgeTask): Promise<JudgeResult> {
  const times = new Float64Array(task.started, 0, 2);
  times[SLOT_PICKED] = Date.now();
  const policy = policyOf(task.policy);
  const ctx: BatchContext = {
    task,
    policy,
    times,
    ...derivedOf(policy),
    // The whole rest of the slot: the pool sized it for a process group per scan of every file of the batch.
    groups: new Int32Array(task.started, SLOT_GROUPS_AT),
    helperPids: {},
    passes: new Set(),
  };
  // Actors load before the deadline starts (a fresh worker loading databases is not the files' fault; the pool
  // bounds that by its load timeout). A load that fails is each scan's 'load' failure below.
  await Promise.all(policy.scanners.map((s) => actorOf(s).then((l) => isContentPass(l.instance) && ctx.passes.add(s.name), () => undefined)));
  times[SLOT_BEGUN] = Date.now();
  const files = await Promise.all(
    task.fds.map((fd, i) =>
      judgeFile(fd, ctx, task.lane?.seqs[i], i).then((f) => {
        times[SLOT_BEGUN] = Date.now(); // progress: the batch's deadline counts from the last file judged
        return f;
      }),
    ),
  );
  return Object.keys(ctx.helperPids).length > 0 ? { files, helperPids: ctx.helperPids } : { files };
}

function actorOf(s: JudgeScanner): Promise<LoadedActor> {
  return loadActor({ name: s.name, actor: s.actor, options: s.options, generation: s.generation });
}

async function judgeFile(fd: number, ctx: BatchContext, seq: number | undefined, index: number): Promise<JudgedFile> {
  const { policy } = ctx;
  const path = pathOf(fd);
  // The stamp from before anything of the file was read (the tags' own, or one read here): the bless lands only if
  // size and mtime still are what it says (answers.cc).
  let before: Stamp | undefined;
  const answers = new Map<string, Answer>(ctx.constants);
  const counted = ctx.counted;
  // The size the scans read up to: from the stamp the tags were judged against (one fstat fewer per scanner).
  let size: number | undefined;
  try {
    const report = ctx.store.readSync(fd, policy.generations);
    before = report.stamp;
    size = Number(report.stamp.size);
    for (const t of report.tags) {
      if (t.judgement === 'valid' && t.value?.kind === 'result' && counted.has(t.scanner)) {
        answers.set(t.scanner, t.value.reason === undefined ? { answer: t.value.answer } : { answer: t.value.answer, reason: t.value.reason });
      }
    }
  } catch {
    /* no readable tags (no xattr support, a vanished file): judge by scanning */
    before = stampIfAny(fd);
  }
  const out: JudgedFile = { path, answers: [], transient: [], slow: [], scans: [], uncounted: [], tagErrors: [], fromTags: false };
  if (evaluate(policy.rules, answers).verdict !== 'pending') {
    out.answers = [...answers];
    out.fromTags = true;
    return concludeHere(judgedAs(out, fd, before), fd, answers, ctx, seq, index);
  }
  const needed = neededScanners(policy.rules, answers);
  if (needed.length === 1) {
    // The usual cold file: one scanner to run. The same as the general case below with one scanner (handed back when
    // it answers), without its promise and closures per file.
    const name = needed[0]!;
    try {
      const r = await scanOne(fd, name, path, size, ctx, out, fleetFor(fd, [name], size, ctx));
      if (r.kind === 'slow') out.slow = [name];
      else {
        answers.set(name, r.answer);
        if (r.transient) out.transient = [name];
      }
    } catch (err) {
      answers.set(name, { answer: 'deny', reason: `scanner failed: ${(err as Error)?.message ?? String(err)}` });
      out.transient = [name];
    }
    out.answers = [...answers];
    return concludeHere(judgedAs(out, fd, before), fd, answers, ctx, seq, index);
  }
  const transient: string[] = [];
  const slow: string[] = [];
  // With several scanners the file may be handed back before the slower ones end, and the daemon then closes its
  // descriptor: they scan through one of their own (a reused number would be another file), closed when all end.
  const scanFd = needed.length > 1 ? native.dupFd(fd) : fd;
  const fleet = fleetFor(scanFd, needed, size, ctx);
  let running = needed.length;
  const ended = () => {
    if (--running === 0 && scanFd !== fd) native.closeFd(scanFd);
  };
  await new Promise<void>((resolve) => {
    let left = needed.length;
    let decided = false;
    const settle = () => {
      if (decided) return;
      left--;
      if (left > 0 && evaluate(policy.rules, answers).verdict === 'pending') return;
      // Handed back now, as it stands; scans still running go on and write their tags, nothing more.
      decided = true;
      out.answers = [...answers];
      out.transient = [...transient];
      out.slow = [...slow];
      judgedAs(out, fd, before);
      resolve();
    };
    if (left === 0) {
      left = 1;
      settle();
    }
    for (const name of needed) {
      const scanned = scanOne(scanFd, name, path, size, ctx, out, fleet);
      scanned.then(ended, ended);
      scanned.then(
        (r) => {
          if (decided) return;
          if (r.kind === 'slow') slow.push(name);
          else {
            answers.set(name, r.answer);
            if (r.transient) transient.push(name);
          }
          settle();
        },
        (err: unknown) => {
          // A bug here, not an actor's failure (those are answers): fail closed for this scanner, and say why.
          if (decided) return;
          answers.set(name, { answer: 'deny', reason: `scanner failed: ${(err as Error)?.message ?? String(err)}` });
          transient.push(name);
          settle();
        },
      );
    }
  });
  return out;
}

/**
 * Tests only (test/cold-lane.test.ts): the worker stops just before a conclusion — it writes `<path>.reached` and
 * waits (blocking this worker, at most 20 s) until `<path>` exists — so that a test can change the file or stop the
 * daemon exactly between the judgement and its conclusion. Unset in every real run.
 */
const LANE_HOLD = process.env['BLESSD_TEST_LANE_HOLD'];
/**
 * The same for a native lane job, without blocking this worker's loop (its Piscina tasks must go on: a reload's).
 * `<path>.die` instead: the worker dies there, mid-batch, of an uncaught exception (test/lane-worker-gone.test.ts).
 */
async function holdForTestAsync(path: string) {
  writeFileSync(`${path}.reached`, '');
  for (let i = 0; i < 2000; i++) {
    if (existsSync(`${path}.die`)) {
      setImmediate(() => {
        throw new Error('test: a pool worker dies mid-batch');
      });
      return new Promise<never>(() => {}); // this batch never goes on
    }
    if (existsSync(path)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}
function holdForTest(path: string) {
  writeFileSync(`${path}.reached`, '');
  const tick = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 2000 && !existsSync(path); i++) Atomics.wait(tick, 0, 0, 10);
}

/**
 * The native lane (native/fanotify/lane.cc): a plain allow is concluded here, from this thread — the stamp-checked
 * bless and the answers of the inode's waiting events — instead of on the main thread. Only an allow of the stack
 * that rests on no failure answer, with nothing left to the main thread and nothing still scanning (the files with
 * one scanner to run, or decided by their tags); the gate declines the rest (a change since the first event, a
 * stack epoch that moved, a stale stamp) and the main thread then concludes as before.
 */
function concludeHere(out: JudgedFile, fd: number, answers: Map<string, Answer>, ctx: BatchContext, seq: number | undefined, index: number): JudgedFile | Promise<JudgedFile> {
  const lane = ctx.task.lane;
  if (lane?.tickets) return finishHere(out, answers, ctx, index);
  if (!lane || seq === undefined || !out.judged || out.slow.length > 0 || out.transient.length > 0) return out;
  if (evaluate(ctx.policy.rules, answers).verdict !== 'allow') return out;
  if (LANE_HOLD) holdForTest(LANE_HOLD);
  try {
    const answered = native.laneConclude(lane.gate, lane.epoch, seq, fd, out.judged.size, out.judged.mtimeNs, out.judged.ctimeNs);
    if (answered === false) {
      // The file changed since it was judged (its change sequence or its stamp moved): these answers describe
      // content that is gone. Left to the main thread to scan again (scan-service), as content that changed under
      // a scan is — never concluded from the old answers there either.
      const gone = [...answers.keys()].filter((n) => ctx.scanners.has(n));
      out.slow = gone;
      out.answers = out.answers.filter(([n]) => !gone.includes(n));
    } else if (answered) out.concluded = answered;
  } catch {
    /* not concluded: the main thread decides, as without the lane */
  }
  return out;
}

/**
 * Stage B (native/fanotify/lane_queue.cc, lane-worker.ts): a job of the native lane queue, which the main thread
 * never saw. A plain allow — of the stack, on no failure answer, nothing left to the main thread, every scan counted
 * in the shared slots and every tag written — is concluded natively; anything else is left unfinished here, and
 * lane-worker.ts hands it to JS, where it takes today's path (and a deny is logged and counted there).
 */
async function finishHere(out: JudgedFile, answers: Map<string, Answer>, ctx: BatchContext, index: number): Promise<JudgedFile> {
  const lane = ctx.task.lane!;
  if (!out.judged || out.slow.length > 0 || out.transient.length > 0 || out.uncounted.length > 0 || out.tagErrors.length > 0) return out;
  if (evaluate(ctx.policy.rules, answers).verdict !== 'allow') return out;
  if (LANE_HOLD) await holdForTestAsync(LANE_HOLD);
  if (lane.finished!.has(index)) return out; // handed over at the batch's deadline
  lane.finished!.add(index);
  try {
    const waits = native.laneFinish(lane.gate, lane.epoch, lane.tickets![index]!, true, out.judged.size, out.judged.mtimeNs, out.judged.ctimeNs);
    if (waits) {
      out.concluded = [];
      out.laneWaits = waits; // for the batch's books (lane-books.ts)
    }
  } catch {
    /* the gate is gone: Shutdown answered its events */
  }
  return out;
}

/**
 * What the bless is checked against: size and mtime from before the content was read (a write moves them), ctime
 * from now, after our own tag writes (which move it too; anything after them moves it again). A scanner still
 * running writes its tag later: that bless then finds ctime moved and caches nothing — one more trip, never a
 * wrong mark.
 */
function judgedAs(out: JudgedFile, fd: number, before: Stamp | undefined): JudgedFile {
  if (!before) return out;
  try {
    out.judged = { size: before.size, mtimeNs: before.mtimeNs, ctimeNs: readStampAndCtime(fd).ctimeNs };
  } catch {
    /* gone: nothing to mark */
  }
  return out;
}

function stampAndCtimeIfAny(fd: number): ReturnType<typeof readStampAndCtime> | undefined {
  try {
    return readStampAndCtime(fd);
  } catch {
    return undefined; // vanished: no digest from this pass (the scan itself says what it found)
  }
}

function stampIfAny(fd: number): Stamp | undefined {
  try {
    return readStamp(fd);
  } catch {
    return undefined; // a vanished file: its bless is not checked, and finds nothing to mark
  }
}

/**
 * The fleet store (src/fleet/share.ts): another host's answer for this content, asked once for every scanner the
 * store serves (src/fleet/scope.ts: not the signature pass, not path-based built-ins). None of them needed: no store
 * traffic at all. A content pass among the needed scanners is the digest's source (share.ts says why it is not
 * looked up); without one, the lookup reads the digest itself.
 */
function fleetFor(fd: number, needed: string[], size: number | undefined, ctx: BatchContext): FleetFile | undefined {
  const { policy } = ctx;
  if (!policy.fleet) return undefined;
  const served = policy.fleet.served;
  const wanted = needed.filter((n) => ctx.scanners.has(n) && (served === undefined || served.includes(n)));
  if (wanted.length === 0) return undefined;
  const source = needed.find((n) => ctx.passes.has(n));
  return new FleetFile(policy.fleet, fd, size, new Map(wanted.map((n) => [n, policy.generations[n] ?? ''])), source);
}

/** One scanner on one file; the fleet digest's source says, on every way out, that its pass is over. */
async function scanOne(fd: number, name: string, path: string, stamped: number | undefined, ctx: BatchContext, out: JudgedFile, fleet?: FleetFile): Promise<Scanned> {
  if (fleet?.source !== name) return scanScanner(fd, name, path, stamped, ctx, out, fleet);
  try {
    return await scanScanner(fd, name, path, stamped, ctx, out, fleet);
  } finally {
    fleet.passEnded(); // a no-op after its digest; else the others' lookup reads one (a failure, a busy lease, …)
  }
}

/** Lease, scan (with the entry's failure policy), conditional result write: one scanner on one file. */
async function scanScanner(fd: number, name: string, path: string, stamped: number | undefined, ctx: BatchContext, out: JudgedFile, fleet?: FleetFile): Promise<Scanned> {
  const s = ctx.scanners.get(name);
  if (!s) return { kind: 'slow' }; // not a pool actor (a remote scanner): the main thread serves it
  const { store, policy } = ctx;
  const generation = policy.generations[name] ?? '';
  const size = stamped ?? Number(readStamp(fd).size); // native, no Stats object (stamp.ts); a throw fails closed above
  if (s.maxSize !== undefined && size > s.maxSize) {
    // A policy on the size, not a failure: no tag (it would outlive a change of maxSize), but cacheable.
    const resolved = resolveFailure({ kind: 'error', code: 'too-large', message: `${name}: ${path} is ${size} bytes, over the limit of ${s.maxSize}` }, s);
    return { kind: 'answer', answer: resolved === RETRY ? { answer: 'deny', reason: 'too large' } : resolved, transient: false };
  }
  const started = performance.now();
  const scansBefore = out.scans.length;
  let token: string | undefined;
  try {
    // Our own live lease is an older scan of this file: this one supersedes it (scan-service.ts says why).
    const lease = store.begin(fd, name, generation, { takeOwn: true });
    if (lease.status === 'busy') return { kind: 'slow' };
    token = lease.token;
  } catch (err) {
    // No room or no support for tags here: the verdict still counts for this access, it cannot outlive it.
    out.tagErrors.push({ name, message: (err as Error).message });
  }
  let retried = false;
  let answer: Answer;
  // Taken instead of a scan, and still written as this host's own tag below; never published again.
  const shared = await fleet?.shared(name);
  if (shared) answer = shared;
  else for (;;) {
    const outcome = await scanOnce(fd, size, path, s, ctx, out, fleet?.source === name ? fleet : undefined);
    const resolved = resolveFailure(outcome, s, { retried });
    if (resolved === RETRY) {
      retried = true;
      continue;
    }
    if (outcome.kind === 'error') {
      // A failure answer is not a verdict on the content: the lease goes back, nothing is tagged.
      if (token !== undefined) store.abort(fd, name, token);
      return { kind: 'answer', answer: resolved, transient: outcome.code !== 'too-large' };
    }
    answer = resolved;
    // A content answer, whose digest and scan saw one content: shared (share.ts checks that, and never blocks).
    fleet?.publish(name, answer);
    break;
  }
  // Lease to result tag: the time this scanner's answer took (the scan-duration metric), for each scan it ran.
  const done = (): Scanned => {
    const totalMs = performance.now() - started;
    for (let i = scansBefore; i < out.scans.length; i++) if (out.scans[i]!.name === name) out.scans[i]!.totalMs = totalMs;
    return { kind: 'answer', answer, transient: false };
  };
  if (token === undefined) return done();
  try {
    // The write lands inside this call, before its first await (no content digest here); the ctime it left is ours
    // — told at once, for another scanner of this file that publishes after it (share.ts).
    const finishing = store.finish(fd, name, token, answer, generation);
    if (fleet) fleet.wroteTag(stampAndCtimeIfAny(fd)?.ctimeNs);
    const written = await finishing;
    if (written.status === 'written') return done();
  } catch (err) {
    out.tagErrors.push({ name, message: (err as Error).message });
    return done();
  }
  return { kind: 'slow' }; // the file changed under the scan: that answer describes content that is gone
}

/** With `source`, this scanner's pass gives the file's fleet digest, with the stamp and ctime around it. */
async function scanOnce(fd: number, size: number, path: string, s: JudgeScanner, ctx: BatchContext, out: JudgedFile, source?: FleetFile): Promise<ScanOutcome> {
  // Counted as it starts (the main thread sees a scan in flight); a scanner without a slot is counted on return.
  if (s.counter !== undefined && s.counter >= 0 && ctx.policy.scanCounts) countScan(ctx.policy.scanCounts, s.counter);
  else out.uncounted.push(s.name);
  // Asked per scan, not once per batch: a reload during the batch retires the instance the batch began with.
  let loaded: LoadedActor;
  try {
    loaded = await actorOf(s);
  } catch (err) {
    return { kind: 'error', code: 'load', message: (err as Error).message };
  }
  // pool.scanTimeout counts from the moment a scanner starts on a file (docs/config.md): the tag work before it
  // (reading, leasing) is not the scan's time. The batch's deadline is from its latest start or end.
  ctx.times[SLOT_BEGUN] = Date.now();
  // Around the pass, as digest.ts around its read: after every lease of the file (taken before the first await of
  // each scanOne), before any result tag (the others wait for this digest, and ours comes after).
  const sink: DigestSink | undefined = source ? { sha256: Buffer.allocUnsafe(32), digested: false } : undefined;
  const before = source ? stampAndCtimeIfAny(fd) : undefined;
  const r = await scanWith(s.name, loaded.instance, { fd, size, path, chunkSize: ctx.task.chunkSize, groups: ctx.groups, marker: ctx.task.marker }, sink);
  const after = before && sink!.digested && !('error' in r) ? stampAndCtimeIfAny(fd) : undefined;
  if (after) source!.passDigest(sink!.sha256, size, before!, after);
  if (r.helperPids) ctx.helperPids[s.name] = r.helperPids;
  if ('error' in r) return { kind: 'error', code: r.error.code, message: r.error.message };
  out.scans.push({ name: s.name, ms: r.ms, totalMs: r.ms });
  return r.reason === undefined ? { kind: 'answer', answer: r.answer, ms: r.ms, generation: r.generation } : { kind: 'answer', answer: r.answer, reason: r.reason, ms: r.ms, generation: r.generation };
}
