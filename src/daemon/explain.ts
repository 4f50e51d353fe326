// `blessctl explain PATH`: why a file gets the verdict it gets. For each stack entry: its control, its answer and
// where the answer comes from (a valid tag, the constant `default`, a fresh scan with --scan, or none yet), the
// judgement of its tag; then the verdict, the entry and control that decided it, and what it still waits for.
// Read-only: a --scan runs the actors in the pool but writes no tag and changes no verdict.
import { fstatSync } from 'node:fs';
import type { StackEntry } from '../config/types.js';
import type { Answer } from '../policy/answer.js';
import { evaluate } from '../policy/stack.js';
import { REMOTE_ACTOR } from '../notify/remote-scanners.js';
import type { DaemonParts } from './parts.js';

export interface ExplainedEntry {
  name: string;
  actor: string;
  control: StackEntry['control'];
  origin: string;
  answer: Answer['answer'] | null;
  reason: string | null;
  /** tag: a valid result tag; constant: the built-in default; scan: scanned now (--scan); none: no answer yet. */
  source: 'tag' | 'constant' | 'scan' | 'none';
  /** The judgement of this scanner's tag on the file, if it has one (valid, stale-stamp, bad-mac...). */
  tag: { judgement: string; detail: string | null } | null;
  /** A --scan that could not answer (timeout, crash, too large): the entry's failure policy would apply. */
  error: string | null;
}

export interface Explanation {
  path: string;
  stamp: { ino: string; igen: number; size: string; mtimeNs: string };
  entries: ExplainedEntry[];
  verdict: 'allow' | 'deny' | 'pending';
  decidedBy: string | null;
  decidedByControl: StackEntry['control'] | null;
  reason: string | null;
  waitingFor: string[];
  ignored: { name: string; control: string; reason?: string }[];
}

export async function explainFile(d: DaemonParts, fd: number, path: string, opts: { scan: boolean }): Promise<Explanation> {
  const stack = d.stack.stack;
  const report = await d.tags.read(fd, d.stack.generations, { verifyContent: d.config.tags.stamp === 'content' });
  const answers = d.stack.answersOf(report);
  const source = new Map<string, ExplainedEntry['source']>();
  for (const e of stack) if (answers.has(e.name)) source.set(e.name, e.builtin && e.actor === 'default' ? 'constant' : 'tag');
  const errors = new Map<string, string>();
  if (opts.scan) {
    const size = fstatSync(fd).size;
    await Promise.all(
      stack
        .filter((e) => !answers.has(e.name) && e.actor !== REMOTE_ACTOR)
        .map(async (e) => {
          const outcome = await d.pool.scan({ fd, size, path }, { name: e.name, actor: e.actor, options: e.options as Record<string, unknown>, maxSize: e.maxSize }, { timeoutMs: d.config.pool.scanTimeout });
          if (outcome.kind === 'answer') {
            answers.set(e.name, outcome.reason === undefined ? { answer: outcome.answer } : { answer: outcome.answer, reason: outcome.reason });
            source.set(e.name, 'scan');
          } else errors.set(e.name, `${outcome.code}: ${outcome.message}`);
        }),
    );
  }
  const v = evaluate(stack, answers);
  const decider = v.decidedBy === undefined ? undefined : stack.find((e) => e.name === v.decidedBy);
  const s = report.stamp;
  return {
    path,
    stamp: { ino: String(s.ino), igen: s.igen, size: String(s.size), mtimeNs: String(s.mtimeNs) },
    entries: stack.map((e) => {
      const a = answers.get(e.name);
      const t = report.tags.find((x) => x.scanner === e.name);
      return {
        name: e.name,
        actor: e.actor,
        control: e.control,
        origin: e.origin,
        answer: a?.answer ?? null,
        reason: a?.reason ?? null,
        source: source.get(e.name) ?? 'none',
        tag: t ? { judgement: t.judgement, detail: t.detail ?? null } : null,
        error: errors.get(e.name) ?? null,
      };
    }),
    verdict: v.verdict,
    decidedBy: v.decidedBy ?? null,
    decidedByControl: decider?.control ?? null,
    reason: v.reason ?? null,
    waitingFor: v.waitingFor,
    ignored: v.ignored,
  };
}
