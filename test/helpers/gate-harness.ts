// A real gate on a private scratch filesystem, with every event recorded. Tests decide the answers.
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Gate, type GuardKind } from '../../src/gate/gate.js';
import { FAN_ALLOW, type GateEvent, type GateOptions, type WaitMode } from '../../src/gate/types.js';
import { makeScratch, type Scratch, type ScratchKind } from './scratch.js';

export interface Harness {
  gate: Gate;
  scratch: Scratch;
  events: GateEvent[];
  /** Resolves with the next event matching `pred` (already seen ones count), or rejects after timeoutMs. */
  next(pred: (e: GateEvent) => boolean, timeoutMs?: number): Promise<GateEvent>;
  /**
   * A barrier: resolves once every gate event queued before the call has reached `events`. A child opens and reads
   * a file of the harness's own; the gate group's queue is first in, first out, so once that child's events arrive
   * (they are answered here, and neither recorded nor shown to onEvent), everything queued before them has too.
   * The way to wait for asynchronous open notices before counting events, instead of sleeping.
   */
  settle(timeoutMs?: number): Promise<void>;
  mode: WaitMode;
  fallback?: string;
}

export async function withGate(
  t: ExecutionContext,
  fs: ScratchKind,
  opts: Partial<GateOptions> & { wait?: WaitMode; kind?: GuardKind; onEvent?: (e: GateEvent, h: Harness) => void; prepare?: (dir: string) => Promise<void> } = {},
): Promise<Harness> {
  const scratch = await makeScratch(fs);
  const events: GateEvent[] = [];
  const waiters: { pred: (e: GateEvent) => boolean; resolve: (e: GateEvent) => void }[] = [];
  let harness: Harness | undefined;
  if (opts.prepare) await opts.prepare(scratch.dir);
  // Written before the mark exists: the barrier file costs no event of its own.
  const barrierFile = join(scratch.dir, '.settle-barrier');
  await writeFile(barrierFile, 'barrier\n');
  const barrierPids = new Map<number, () => void>();
  const gate = new Gate({
    deadlineMs: opts.deadlineMs ?? 15_000,
    deadlineAnswer: opts.deadlineAnswer ?? 'retry',  // the daemon's default: fail closed
    maxPending: opts.maxPending,
    maxPendingPerUid: opts.maxPendingPerUid,
    maxAllowedEntries: opts.maxAllowedEntries,
    accessDeadlineMs: opts.accessDeadlineMs,
    exemptPids: opts.exemptPids,
    onEvents: (batch) => {
      for (const e of batch) {
        const barrier = barrierPids.get(e.pid) ?? barrierPids.get(e.tid);
        if (barrier) {
          if (e.kind === 'perm') gate.native.answer(e.id, FAN_ALLOW);
          barrier();
          continue;
        }
        events.push(e);
        opts.onEvent?.(e, harness!);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i].pred(e)) {
            waiters[i].resolve(e);
            waiters.splice(i, 1);
          }
        }
      }
    },
  });
  t.teardown(async () => {
    gate.close();
    await scratch.cleanup();
  });
  const mark = await gate.guard(scratch.dir, opts.kind ?? 'filesystem', opts.wait ?? 'read');
  harness = {
    gate,
    scratch,
    events,
    mode: mark.mode,
    fallback: mark.fallback,
    next(pred, timeoutMs = 5000) {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (e: GateEvent) => (clearTimeout(timer), resolve(e)) };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error('no matching gate event within ' + timeoutMs + ' ms'));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    settle(timeoutMs = 10_000) {
      const child = spawn('cat', [barrierFile], { stdio: 'ignore' });
      return new Promise<void>((resolve, reject) => {
        let seen = false;
        let exited = false;
        const done = () => {
          if (!seen || !exited) return;
          clearTimeout(timer);
          barrierPids.delete(child.pid!);
          resolve();
        };
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          barrierPids.delete(child.pid!);
          reject(new Error(`settle: the barrier read's event did not arrive within ${timeoutMs} ms`));
        }, timeoutMs);
        barrierPids.set(child.pid!, () => ((seen = true), done()));
        child.on('error', reject);
        child.on('exit', () => ((exited = true), done()));
      });
    },
  };
  return harness;
}
