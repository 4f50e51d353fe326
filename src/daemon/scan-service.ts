// One scanner on one file, end to end: lease the tag, scan in the pool, apply the entry's failure policy, write the
// result through the conditional bless. The machine only sees the answer.
import { fstatSync } from 'node:fs';
import type { StackEntry } from '../config/types.js';
import type { Answer } from '../policy/answer.js';
import type { Cancelled } from '../pool/cancel.js';
import { resolveFailure, RETRY } from '../pool/failure.js';
import type { ScanOutcome, ScanPool } from '../pool/scan-pool.js';
import type { TagStore } from '../tags/index.js';
import { splitTagGeneration } from '../tags/generation.js';
import type { ScanResult } from '../inode/services.js';
import type { FleetPolicy } from '../fleet/share.js';
import type { FileDigest } from '../pool/tasks.js';
import type { DigestRound } from './digest-round.js';

export interface ScanContext {
  pool: ScanPool;
  tags: TagStore;
  entry: StackEntry;
  /** The tag generation of this scanner (actor generation + bump counter). */
  generation: string;
  timeoutMs: number;
  path: string;
  onScan?: (name: string) => void;
  /** Aborted when the inode machine no longer listens for this scan. */
  signal?: Cancelled;
  /** A tag could not be written: the answer stands for this access only. */
  onTagError?: (err: Error) => void;
  /** The fleet store (src/fleet/share.ts): pool scans look there first, and share what they find. */
  fleet?: FleetPolicy;
  /** The file's other scans of this round, for one digest between them (digest-round.ts). */
  round?: DigestRound;
  /** Who scans, instead of the pool: an out-of-process scanner on the control socket (src/notify). */
  run?: (file: { fd: number; size: number; path: string }) => Promise<ScanOutcome>;
}

const MAX_ATTEMPTS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One scan's answer, and the failure it stands in for, if any. */
interface Scanned {
  answer: Answer;
  failure?: 'timeout' | 'crash' | 'too-large' | 'load';
  /** The content's digest the task read anyway (digest-round.ts). */
  digest?: FileDigest;
}

// A failure answer is not a verdict on the content: it is neither tagged nor cached (transient). A too-large answer
// is a policy on the file's size, not a failure: it is not tagged either (the tag would outlive a change of
// `maxSize`, which no generation records; the answer costs an fstat to give again), but it may be cached in the
// native table, which forgets it at any change of the file and at every reload.
function resultOf(name: string, s: Scanned, source: ScanResult['source'] = 'scan'): ScanResult {
  if (s.failure === undefined) return { name, answer: s.answer, source };
  return s.failure === 'too-large' ? { name, answer: s.answer, source: 'failure-policy' } : { name, answer: s.answer, source: 'failure-policy', transient: true };
}

export async function scanWithTags(fd: number, ctx: ScanContext): Promise<ScanResult> {
  const { entry, tags } = ctx;
  let changed = 0;
  let waitedForeign = false;
  while (changed < MAX_ATTEMPTS) {
    // A retry is for a file that changed under the scan (or a lease that went); if the machine has moved on (a new
    // epoch or a verdict), the new epoch's own scan covers it.
    if ((changed > 0 || waitedForeign) && ctx.signal?.aborted) break;
    let lease: ReturnType<TagStore['begin']>;
    try {
      // Our own live lease here is an older scan of this file (an earlier epoch, or an earlier attempt): this one
      // supersedes it. Waiting it out would hold the reader for a whole lease. A lease whose holder is gone (a
      // daemon of this host that died) is void and taken over at once (judge.ts).
      // A result already there is not replaced unjudged: the machine chose to scan from tags it read a moment ago,
      // and another daemon on this filesystem (docs/sharedfs.md) may have finished its scan since — its live lease
      // then, its result now. Taking that result over would scan the file a second time.
      const begun = tags.begin(fd, entry.name, ctx.generation, { takeOwn: true, yieldToResult: true });
      if (begun.status === 'result') {
        const answer = await resultThere(fd, ctx);
        if (answer) return { name: entry.name, answer, source: 'busy-elsewhere' };
        // Not a valid result after all (the ctime rule, a content digest, or gone meanwhile): scan, replacing it.
        lease = tags.begin(fd, entry.name, ctx.generation, { takeOwn: true });
      } else lease = begun;
      if (lease.status === 'leased') ctx.round?.wroteTag(fd); // the ctime our lease left (no await since)
    } catch (err) {
      // No room or no support for tags on this file (ENOSPC, EDQUOT, EOPNOTSUPP...): the verdict still counts for
      // this access, it just cannot outlive it. Say so, and scan without a lease.
      ctx.onTagError?.(err as Error);
      return resultOf(entry.name, await scanOnce(fd, ctx));
    }
    if (lease.status === 'busy') {
      // Someone else (another host, a live daemon) scans this file: wait for their result — once, bounded by our
      // scan timeout. Still held after that: scan ourselves without the lease (the holder writes the tag). Waiting
      // never ends in a deny by itself.
      if (!waitedForeign) {
        waitedForeign = true;
        const answer = await awaitForeignResult(fd, ctx, lease.leaseUntil);
        if (answer) return { name: entry.name, answer, source: 'busy-elsewhere' };
        continue;
      }
      return resultOf(entry.name, await scanOnce(fd, ctx));
    }
    let scanned: Scanned;
    try {
      scanned = await scanOnce(fd, ctx);
    } catch (err) {
      tags.abort(fd, entry.name, lease.token);
      throw err;
    }
    if (scanned.failure !== undefined) {
      // Give the lease back: the next access (or another daemon) scans again.
      tags.abort(fd, entry.name, lease.token);
      return resultOf(entry.name, scanned);
    }
    let written;
    try {
      ctx.round?.offer(scanned.digest);
      // Content stamp: the round's digest if it still names the file, else finish reads one (the old way).
      const digest = tags.stampMode === 'content' ? ctx.round?.forTag(fd) : undefined;
      written = await tags.finish(fd, entry.name, lease.token, scanned.answer, ctx.generation, digest === undefined ? {} : { digest });
      ctx.round?.wroteTag(fd); // the ctime our result left (read one promise turn after the write)
    } catch (err) {
      ctx.onTagError?.(err as Error);
      return resultOf(entry.name, scanned);
    }
    if (written.status === 'written') return resultOf(entry.name, scanned);
    // The file changed under the scan (or the tag was cleared): that answer describes content that is gone.
    // A change event is on its way to the machine; meanwhile scan what is there now.
    changed++;
  }
  return { name: entry.name, answer: { answer: 'deny', reason: `${entry.name}: the file kept changing during ${MAX_ATTEMPTS} scans` }, source: 'failure-policy', transient: true };
}

/** Scan in the pool, with the entry's failure policy (retry once where it says so). */
async function scanOnce(fd: number, ctx: ScanContext): Promise<Scanned> {
  const { entry } = ctx;
  let retried = false;
  for (;;) {
    // With a fleet store, counted once the worker says it scanned (an answer from the store is no scan).
    if (!ctx.fleet || ctx.run) ctx.onScan?.(entry.name);
    const size = fstatSync(fd).size;
    const result = ctx.run
      ? await ctx.run({ fd, size, path: ctx.path })
      : await ctx.pool.scan(
          { fd, size, path: ctx.path },
          // The actor generation this tag generation stands for: a worker holding an older database loads it anew.
          { name: entry.name, actor: entry.actor, options: entry.options as Record<string, unknown>, maxSize: entry.maxSize, generation: splitTagGeneration(ctx.generation).actor },
          {
            timeoutMs: ctx.timeoutMs,
            ...(ctx.fleet && { fleet: fleetTask(ctx.fleet, ctx.generation, ctx.round) }),
            ...(ctx.round?.wantsPassDigest(entry.name) && { digest: true as const }),
          },
        );
    if (ctx.fleet && !ctx.run && !(result.kind === 'answer' && result.shared)) ctx.onScan?.(entry.name);
    const resolved = resolveFailure(result, entry, { retried });
    if (resolved === RETRY) {
      retried = true;
      continue;
    }
    if (result.kind === 'error') return { answer: resolved, failure: result.code };
    return result.digest ? { answer: resolved, digest: result.digest } : { answer: resolved };
  }
}

/** A served scanner's store task: with the round's digest (the pass's), checked in the worker, instead of a read. */
function fleetTask(policy: FleetPolicy, generation: string, round: DigestRound | undefined) {
  const digest = round?.digest();
  const ownCtimeNs = round?.ownCtime;
  return { policy, generation, ...(digest && { digest }), ...(ownCtimeNs !== undefined && { ownCtimeNs }) };
}

/** This scanner's result on the file, if the full judgement (TagStore.read: stamp, generation, ctime rule, content) says valid. */
async function resultThere(fd: number, ctx: ScanContext): Promise<Answer | undefined> {
  const report = await ctx.tags.read(fd, { [ctx.entry.name]: ctx.generation }, { verifyContent: ctx.tags.stampMode === 'content' });
  const tag = report.tags.find((t) => t.scanner === ctx.entry.name);
  if (tag?.judgement === 'valid' && tag.value?.kind === 'result') return tag.value.reason === undefined ? { answer: tag.value.answer } : { answer: tag.value.answer, reason: tag.value.reason };
  return undefined;
}

async function awaitForeignResult(fd: number, ctx: ScanContext, leaseUntil: number): Promise<Answer | undefined> {
  const until = Math.min(leaseUntil, Date.now() + ctx.timeoutMs);
  while (Date.now() < until) {
    await sleep(100);
    const report = await ctx.tags.read(fd, { [ctx.entry.name]: ctx.generation });
    const tag = report.tags.find((t) => t.scanner === ctx.entry.name);
    if (!tag) return undefined; // lease given back or cleared: scan ourselves
    if (tag.judgement === 'valid' && tag.value?.kind === 'result') return { answer: tag.value.answer, reason: tag.value.reason };
    if (tag.judgement !== 'scanning-live') return undefined;
  }
  return undefined;
}
