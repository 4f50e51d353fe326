// A real gate on a private scratch filesystem, with every event recorded. Tests decide the answers.
import type { ExecutionContext } from 'ava';
import { Gate, type GuardKind } from '../../src/gate/gate.js';
import type { GateEvent, GateOptions, WaitMode } from '../../src/gate/types.js';
import { makeScratch, type Scratch, type ScratchKind } from './scratch.js';

export interface Harness {
  gate: Gate;
  scratch: Scratch;
  events: GateEvent[];
  /** Resolves with the next event matching `pred` (already seen ones count), or rejects after timeoutMs. */
  next(pred: (e: GateEvent) => boolean, timeoutMs?: number): Promise<GateEvent>;
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
  const gate = new Gate({
    deadlineMs: opts.deadlineMs ?? 15_000,
    deadlineAnswer: opts.deadlineAnswer ?? 'allow',
    maxPending: opts.maxPending,
    maxPendingPerUid: opts.maxPendingPerUid,
    accessDeadlineMs: opts.accessDeadlineMs,
    exemptPids: opts.exemptPids,
    onEvents: (batch) => {
      for (const e of batch) {
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
    for (const e of events) if (e.kind === 'open') gate.native.release(e.fd);
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
  };
  return harness;
}
