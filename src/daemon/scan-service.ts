// One scanner on one file, end to end: lease the tag, scan in the pool, apply the entry's failure policy, write the
// result through the conditional bless. The machine only sees the answer.
import { fstatSync } from 'node:fs';
import type { StackEntry } from '../config/types.js';
import type { Answer } from '../policy/answer.js';
import { resolveFailure, RETRY } from '../pool/failure.js';
import type { ScanOutcome, ScanPool } from '../pool/scan-pool.js';
import type { TagStore } from '../tags/index.js';
import { splitTagGeneration } from '../tags/generation.js';
import type { ScanResult } from '../inode/services.js';

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
  signal?: AbortSignal;
  /** A tag could not be written: the answer stands for this access only. */
  onTagError?: (err: Error) => void;
  /** Who scans, instead of the pool: an out-of-process scanner on the control socket (src/notify). */
  run?: (file: { fd: number; size: number; path: string }) => Promise<ScanOutcome>;
}

const MAX_ATTEMPTS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function scanWithTags(fd: number, ctx: ScanContext): Promise<ScanResult> {
  const { entry, tags } = ctx;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    // A retry is for a file that changed under the scan; if the machine has moved on (a new epoch or a verdict),
    // the new epoch's own scan covers it.
    if (attempt > 0 && ctx.signal?.aborted) break;
    let lease: ReturnType<TagStore['begin']>;
    try {
      // Our own live lease here is an older scan of this file (an earlier epoch, or an earlier attempt): this one
      // supersedes it. Waiting it out would hold the reader for a whole lease.
      lease = tags.begin(fd, entry.name, ctx.generation, { takeOwn: true });
    } catch (err) {
      // No room or no support for tags on this file (ENOSPC, EDQUOT, EOPNOTSUPP...): the verdict still counts for
      // this access, it just cannot outlive it. Say so, and scan without a lease.
      ctx.onTagError?.(err as Error);
      return { name: entry.name, answer: await scanOnce(fd, ctx), source: 'scan' };
    }
    if (lease.status === 'busy') {
      // Someone else (another daemon, another host) scans this file: wait for their result, up to their lease.
      const answer = await awaitForeignResult(fd, ctx, lease.leaseUntil);
      if (answer) return { name: entry.name, answer, source: 'busy-elsewhere' };
      continue;
    }
    let answer: Answer;
    try {
      answer = await scanOnce(fd, ctx);
    } catch (err) {
      tags.abort(fd, entry.name, lease.token);
      throw err;
    }
    let written;
    try {
      written = await tags.finish(fd, entry.name, lease.token, answer, ctx.generation);
    } catch (err) {
      ctx.onTagError?.(err as Error);
      return { name: entry.name, answer, source: outcome(answer) };
    }
    if (written.status === 'written') return { name: entry.name, answer, source: outcome(answer) };
    // The file changed under the scan (or the tag was cleared): that answer describes content that is gone.
    // A change event is on its way to the machine; meanwhile scan what is there now.
  }
  return { name: entry.name, answer: { answer: 'deny', reason: `${entry.name}: the file kept changing during ${MAX_ATTEMPTS} scans` }, source: 'failure-policy' };
}

/** Scan in the pool, with the entry's failure policy (retry once where it says so). */
async function scanOnce(fd: number, ctx: ScanContext): Promise<Answer> {
  const { entry } = ctx;
  let retried = false;
  for (;;) {
    ctx.onScan?.(entry.name);
    const size = fstatSync(fd).size;
    const result = ctx.run
      ? await ctx.run({ fd, size, path: ctx.path })
      : await ctx.pool.scan(
          { fd, size, path: ctx.path },
          // The actor generation this tag generation stands for: a worker holding an older database loads it anew.
          { name: entry.name, actor: entry.actor, options: entry.options as Record<string, unknown>, maxSize: entry.maxSize, generation: splitTagGeneration(ctx.generation).actor },
          { timeoutMs: ctx.timeoutMs },
        );
    const resolved = resolveFailure(result, entry, { retried });
    if (resolved !== RETRY) return resolved;
    retried = true;
  }
}

const outcome = (a: Answer): ScanResult['source'] => (a.reason && /^(timeout|crash|load|too-large):/.test(a.reason) ? 'failure-policy' : 'scan');

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
