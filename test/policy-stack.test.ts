// The PAM-style stack: the full control x answer table, short-circuits on partial answers, and an exhaustive
// cross-check of evaluate()/neededScanners() against a plain reference walk over every completion of the answers.
import test from 'ava';
import type { Answer, AnswerKind } from '../src/policy/answer.js';
import type { Control } from '../src/config/types.js';
import { evaluate, explainStack, neededScanners, stackWarnings, type StackRule } from '../src/policy/stack.js';

const KINDS: AnswerKind[] = ['deny', 'ok', 'allow'];
const CONTROLS: Control[] = ['required', 'requisite', 'sufficient', 'optional', 'observe'];

const rule = (name: string, control: Control, actor = name): StackRule => ({ name, control, actor });
const answers = (o: Record<string, AnswerKind>): Map<string, Answer> =>
  new Map(Object.entries(o).map(([k, v]) => [k, { answer: v, ...(v === 'deny' && { reason: `${k}-reason` }) }]));
const DEFAULT = rule('default', 'required');

// One row per cell of the table in docs/config.md. Probes:
//  withDefault: [x, default=allow]                    -> verdict and who decided
//  beforePending: [x, later=required unanswered, default=allow] -> decided now, or still pending
//  alone: [x]                                          -> the end-of-stack rule
type Verdict = 'allow' | 'deny' | 'pending';
const TABLE: { control: Control; answer: AnswerKind; withDefault: [Verdict, string]; beforePending: Verdict; alone: Verdict }[] = [
  { control: 'required', answer: 'deny', withDefault: ['deny', 'x'], beforePending: 'deny', alone: 'deny' }, // remember failure
  { control: 'required', answer: 'ok', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' }, // nothing
  { control: 'required', answer: 'allow', withDefault: ['allow', 'x'], beforePending: 'pending', alone: 'allow' }, // remember success
  { control: 'requisite', answer: 'deny', withDefault: ['deny', 'x'], beforePending: 'deny', alone: 'deny' }, // deny now
  { control: 'requisite', answer: 'ok', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' },
  { control: 'requisite', answer: 'allow', withDefault: ['allow', 'x'], beforePending: 'pending', alone: 'allow' },
  { control: 'sufficient', answer: 'deny', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' }, // ignored
  { control: 'sufficient', answer: 'ok', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' },
  { control: 'sufficient', answer: 'allow', withDefault: ['allow', 'x'], beforePending: 'allow', alone: 'allow' }, // allow now
  { control: 'optional', answer: 'deny', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' }, // ignored
  { control: 'optional', answer: 'ok', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' },
  { control: 'optional', answer: 'allow', withDefault: ['allow', 'x'], beforePending: 'pending', alone: 'allow' }, // remember success
  { control: 'observe', answer: 'deny', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' }, // ignored
  { control: 'observe', answer: 'ok', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' },
  { control: 'observe', answer: 'allow', withDefault: ['allow', 'default'], beforePending: 'pending', alone: 'deny' }, // no vouch
];

for (const row of TABLE) {
  test(`table: ${row.control} answering ${row.answer}`, (t) => {
    const withDefault = evaluate([rule('x', row.control), DEFAULT], answers({ x: row.answer, default: 'allow' }));
    t.is(withDefault.verdict, row.withDefault[0]);
    t.is(withDefault.decidedBy, row.withDefault[1]);
    t.deepEqual(withDefault.waitingFor, []);
    // Denies that the stack ignores are handed back for logging, with their reason.
    const ignoredDeny = row.answer === 'deny' && ['sufficient', 'optional', 'observe'].includes(row.control);
    t.deepEqual(withDefault.ignored, ignoredDeny ? [{ name: 'x', control: row.control, reason: 'x-reason' }] : []);

    const pending = evaluate([rule('x', row.control), rule('later', 'required'), DEFAULT], answers({ x: row.answer, default: 'allow' }));
    t.is(pending.verdict, row.beforePending);
    t.deepEqual(pending.waitingFor, row.beforePending === 'pending' ? ['later'] : []);

    const alone = evaluate([rule('x', row.control)], answers({ x: row.answer }));
    t.is(alone.verdict, row.alone);
    if (alone.verdict === 'deny' && row.answer !== 'deny') t.regex(alone.reason!, /nobody vouched/);
  });
}

test('the table covers every control and answer', (t) => {
  t.is(new Set(TABLE.map((r) => `${r.control}/${r.answer}`)).size, CONTROLS.length * KINDS.length);
});

test('required deny names the scanner and its reason; requisite says so', (t) => {
  const r = evaluate([rule('sig', 'required'), DEFAULT], answers({ sig: 'deny', default: 'allow' }));
  t.is(r.reason, 'sig (required) denied: sig-reason');
  const q = evaluate([rule('sig', 'requisite'), DEFAULT], answers({ sig: 'deny', default: 'allow' }));
  t.is(q.reason, 'sig (requisite) denied: sig-reason');
});

test('short-circuit: a requisite deny decides while later scanners are still pending', (t) => {
  const stack = [rule('fast', 'requisite'), rule('slow', 'required'), rule('slower', 'required'), DEFAULT];
  const r = evaluate(stack, answers({ fast: 'deny' }));
  t.is(r.verdict, 'deny');
  t.is(r.decidedBy, 'fast');
  t.deepEqual(r.waitingFor, []);
  t.deepEqual(neededScanners(stack, answers({ fast: 'deny' })), []);
});

test('short-circuit: a sufficient allow decides before a pending later required', (t) => {
  const stack = [rule('allowlist', 'sufficient'), rule('sig', 'required'), DEFAULT];
  const r = evaluate(stack, answers({ allowlist: 'allow' }));
  t.is(r.verdict, 'allow');
  t.is(r.decidedBy, 'allowlist');
  t.deepEqual(r.waitingFor, []);
});

test('a sufficient allow after a remembered failure does not allow', (t) => {
  const stack = [rule('sig', 'required'), rule('allowlist', 'sufficient'), DEFAULT];
  const r = evaluate(stack, answers({ sig: 'deny', allowlist: 'allow', default: 'allow' }));
  t.is(r.verdict, 'deny');
  t.is(r.decidedBy, 'sig');
  // ... and it is already decided the moment sig denies.
  t.is(evaluate(stack, answers({ sig: 'deny' })).verdict, 'deny');
});

test('an earlier required failure stays the cause when a requisite denies later', (t) => {
  const r = evaluate([rule('a', 'required'), rule('b', 'requisite'), DEFAULT], answers({ a: 'deny', b: 'deny' }));
  t.is(r.verdict, 'deny');
  t.is(r.decidedBy, 'a');
});

test('observe: a deny never blocks, and an unanswered observe entry never makes the verdict pending', (t) => {
  const stack = [rule('audit', 'observe'), DEFAULT];
  t.is(evaluate(stack, answers({ audit: 'deny', default: 'allow' })).verdict, 'allow');
  const r = evaluate(stack, answers({ default: 'allow' }));
  t.is(r.verdict, 'allow');
  t.deepEqual(r.waitingFor, []);
  t.deepEqual(neededScanners(stack, new Map()), ['default']);
});

test('all ok and no default: denied, nobody vouched', (t) => {
  const r = evaluate([rule('a', 'required'), rule('b', 'optional')], answers({ a: 'ok', b: 'ok' }));
  t.is(r.verdict, 'deny');
  t.is(r.decidedBy, undefined);
  t.regex(r.reason!, /nobody vouched/);
});

test('pending lists only entries that can still change the verdict', (t) => {
  const stack = [rule('opt', 'optional'), rule('sig', 'required'), rule('audit', 'observe'), DEFAULT];
  // Nothing answered yet: opt matters too (if default said 'ok', opt's allow would be the only vouch).
  const r = evaluate(stack, new Map());
  t.is(r.verdict, 'pending');
  t.deepEqual(r.waitingFor, ['opt', 'sig', 'default']);
  // Once the default has allowed, opt cannot change anything: only sig is worth waiting for.
  t.deepEqual(evaluate(stack, answers({ default: 'allow' })).waitingFor, ['sig']);
  // With an optional before a default that already allowed, the optional changes nothing.
  t.is(evaluate([rule('opt', 'optional'), DEFAULT], answers({ default: 'allow' })).verdict, 'allow');
  // A remembered failure makes every other scanner moot.
  t.deepEqual(evaluate(stack, answers({ sig: 'deny' })), {
    verdict: 'deny',
    decidedBy: 'sig',
    reason: 'sig (required) denied: sig-reason',
    waitingFor: [],
    ignored: [],
  });
});

// --- exhaustive cross-check against an independent reference walk ---------------------------------------------

function reference(stack: StackRule[], full: Map<string, AnswerKind>): 'allow' | 'deny' {
  let failed = false;
  let vouched = false;
  for (const e of stack) {
    const a = full.get(e.name)!;
    if (e.control === 'observe' || a === 'ok') continue;
    if (e.control === 'required') a === 'deny' ? (failed = true) : (vouched = true);
    else if (e.control === 'requisite') {
      if (a === 'deny') return 'deny';
      vouched = true;
    } else if (e.control === 'sufficient') {
      if (a === 'allow' && !failed) return 'allow';
    } else if (a === 'allow') vouched = true;
  }
  return failed ? 'deny' : vouched ? 'allow' : 'deny';
}

function* completions(stack: StackRule[], partial: Map<string, AnswerKind>, i = 0): Generator<Map<string, AnswerKind>> {
  if (i === stack.length) return yield new Map(partial);
  const name = stack[i]!.name;
  if (partial.has(name)) return yield* completions(stack, partial, i + 1);
  for (const k of KINDS) {
    partial.set(name, k);
    yield* completions(stack, partial, i + 1);
    partial.delete(name);
  }
}

test('evaluate and neededScanners agree with brute force on random stacks and partial answers', (t) => {
  // Deterministic xorshift32 (a plain LCG's low bits cycle too fast for `% 2`).
  let seed = 0x9e3779b9;
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  for (let round = 0; round < 1500; round++) {
    const stack = Array.from({ length: 1 + rand(5) }, (_, i) => rule(`s${i}`, CONTROLS[rand(5)]!));
    const partial = new Map<string, AnswerKind>();
    for (const e of stack) if (rand(2)) partial.set(e.name, KINDS[rand(3)]!);
    const given = new Map([...partial].map(([k, v]) => [k, { answer: v }] as const));
    const outcomes = new Set([...completions(stack, partial)].map((c) => reference(stack, c)));
    const r = evaluate(stack, given);
    const label = `${stack.map((e) => `${e.control}:${partial.get(e.name) ?? '?'}`).join(' ')}`;
    if (outcomes.size === 1) t.is(r.verdict, [...outcomes][0]!, label);
    else t.is(r.verdict, 'pending', label);
    // An entry is needed iff flipping its answer changes the verdict for some completion of the others.
    const needed = stack
      .filter((e) => !partial.has(e.name))
      .filter((e) =>
        [...completions(stack, partial)].some((c) =>
          KINDS.some((k) => reference(stack, new Map(c).set(e.name, k)) !== reference(stack, c)),
        ),
      )
      .map((e) => e.name);
    t.deepEqual(neededScanners(stack, given), needed, label);
    if (r.verdict === 'pending') t.true(r.waitingFor.length > 0, label);
  }
});

test('explainStack walks the entries and warns about a missing default', (t) => {
  const text = explainStack([rule('signature', 'required'), rule('clamav', 'requisite', 'exec'), DEFAULT]);
  t.regex(text, /1\. signature +required/);
  t.regex(text, /2\. clamav +requisite +deny: deny at once.*\(actor exec\)/);
  t.regex(text, /End of stack/);
  t.notRegex(text, /warning/);
  t.regex(explainStack([rule('signature', 'required')]), /warning: no `default` entry/);
  t.deepEqual(stackWarnings([rule('a', 'observe')]), ['every entry is observe: every file is denied (nobody vouches)']);
});
