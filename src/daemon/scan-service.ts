// One scanner on one file, end to end: lease the tag, scan in the pool, apply the entry's failure policy, write the
// result through the conditional bless. The machine only sees the answer.
import { fstatSync } from 'node:fs';
import type { StackEntry } from '../config/types.js';
import type { Answer } from '../policy/answer.js';
import { resolveFailure, RETRY } from '../pool/failure.js';
import type { ScanPool } from '../pool/scan-pool.js';
import type { TagStore } from '../tags/index.js';
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
}

const MAX_ATTEMPTS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function scanWithTags(fd: number, ctx: ScanContext): Promise<ScanResult> {
  const { entry, tags } = ctx;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const lease = tags.begin(fd, entry.name, ctx.generation);
    if (lease.status === 'busy') {
      // Someone else (another daemon, another host) scans this file: wait for their result, up to their lease.
      const answer = await awaitForeignResult(fd, ctx, lease.leaseUntil);
      if (answer) return { name: entry.name, answer, source: 'busy-elsewhere' };
      continue;
    }
    let answer: Answer | undefined;
    let retried = false;
    while (!answer) {
      ctx.onScan?.(entry.name);
      const size = fstatSync(fd).size;
      const outcome = await ctx.pool.scan({ fd, size, path: ctx.path }, { name: entry.name, actor: entry.actor, options: entry.options as Record<string, unknown>, maxSize: entry.maxSize }, { timeoutMs: ctx.timeoutMs });
      const resolved = resolveFailure(outcome, entry, { retried });
      if (resolved === RETRY) retried = true;
      else answer = resolved;
    }
    const written = await tags.finish(fd, entry.name, lease.token, answer, ctx.generation);
    if (written.status === 'written') return { name: entry.name, answer, source: outcome(answer) };
    // The file changed under the scan (or the tag was cleared): that answer describes content that is gone.
    // A change event is on its way to the machine; meanwhile scan what is there now.
  }
  return { name: entry.name, answer: { answer: 'deny', reason: `${entry.name}: the file kept changing during ${MAX_ATTEMPTS} scans` }, source: 'failure-policy' };
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
