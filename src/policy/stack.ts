// The PAM-style policy stack: combines scanners' answers into one verdict.
//
// Entries are walked in order; each control says what its answer does:
//   control     deny                   ok        allow
//   required    remember failure, go on nothing   remember success
//   requisite   deny now               nothing   remember success
//   sufficient  ignored (logged)       nothing   allow now, if no earlier failure
//   optional    ignored (logged)       nothing   remember success
//   observe     ignored                ignored   ignored
// End of stack: a remembered failure denies; else a remembered success allows; else deny ("nobody vouched").
//
// Answers arrive one by one while scans run, so evaluate() also works on a partial set: it says 'pending' only
// when some unanswered entry could still change the verdict, which lets the daemon answer the kernel as soon as
// a requisite denies or a sufficient allows, without waiting for slower scanners.
import type { Answer, AnswerKind } from './answer.js';
import type { Control, StackEntry } from '../config/types.js';

/** What the stack needs of an entry (config entries and must-pass entries both fit). */
export type StackRule = Pick<StackEntry, 'name' | 'control'> & Partial<Pick<StackEntry, 'actor' | 'origin'>>;

export interface Evaluation {
  verdict: 'allow' | 'deny' | 'pending';
  /** The entry whose answer decided (absent for "nobody vouched" and for pending). */
  decidedBy?: string;
  reason?: string;
  /** Pending only: unanswered entries whose answer can still change the verdict. Never observe entries. */
  waitingFor: string[];
  /** Denies that the stack ignored (sufficient, optional, observe): worth a log line, not a verdict. */
  ignored: { name: string; control: Control; reason?: string }[];
}

// The walk as a tiny automaton, so partial answers can be explored exhaustively and cheaply.
// A live state is two bits (a failure / a success remembered); ALLOW and DENY are final.
const FAIL = 1;
const SUCC = 2;
const ALLOW = 4;
const DENY = 5;
const KINDS: readonly AnswerKind[] = ['deny', 'ok', 'allow'];

function step(state: number, control: Control, answer: AnswerKind): number {
  if (state >= ALLOW) return state;
  switch (control) {
    case 'observe':
      return state;
    case 'required':
      return answer === 'deny' ? state | FAIL : answer === 'allow' ? state | SUCC : state;
    case 'requisite':
      return answer === 'deny' ? DENY : answer === 'allow' ? state | SUCC : state;
    case 'sufficient':
      // After a remembered failure a sufficient allow cannot win (PAM ignores it too).
      return answer === 'allow' && !(state & FAIL) ? ALLOW : state;
    case 'optional':
      return answer === 'allow' ? state | SUCC : state;
  }
}

function finish(state: number): 'allow' | 'deny' {
  if (state === ALLOW) return 'allow';
  if (state === DENY || state & FAIL) return 'deny';
  return state & SUCC ? 'allow' : 'deny';
}

/** The verdicts reachable over every answer the unanswered entries might still give. */
function possibleVerdicts(stack: readonly StackRule[], answers: ReadonlyMap<string, Answer>): Set<'allow' | 'deny'> {
  let states = new Set([0]);
  for (const e of stack) {
    const known = answers.get(e.name)?.answer;
    const next = new Set<number>();
    for (const s of states) for (const a of known ? [known] : KINDS) next.add(step(s, e.control, a));
    states = next;
  }
  return new Set([...states].map(finish));
}

/**
 * Whether entry `index` (unanswered) can change the verdict: is there some way the other unanswered entries could
 * answer under which two different answers of this one give different verdicts? Two copies of the walk run side
 * by side, sharing every answer except this entry's (at most 6 x 6 state pairs).
 */
function canChange(stack: readonly StackRule[], answers: ReadonlyMap<string, Answer>, index: number): boolean {
  let pairs = new Set([0]); // pair encoded as a * 8 + b
  for (let i = 0; i < stack.length; i++) {
    const e = stack[i]!;
    const known = answers.get(e.name)?.answer;
    const next = new Set<number>();
    for (const p of pairs) {
      const [a, b] = [p >> 3, p & 7];
      if (i === index) {
        for (const x of KINDS) for (const y of KINDS) next.add((step(a, e.control, x) << 3) | step(b, e.control, y));
      } else {
        for (const x of known ? [known] : KINDS) next.add((step(a, e.control, x) << 3) | step(b, e.control, x));
      }
    }
    pairs = next;
  }
  return [...pairs].some((p) => finish(p >> 3) !== finish(p & 7));
}

/** Unanswered entries whose answer can still change the verdict (observe entries never can). */
export function neededScanners(stack: readonly StackRule[], answers: ReadonlyMap<string, Answer>): string[] {
  return stack
    .map((e, i) => ({ e, i }))
    .filter(({ e, i }) => e.control !== 'observe' && !answers.has(e.name) && canChange(stack, answers, i))
    .map(({ e }) => e.name);
}

/** Combine the answers so far into a verdict, or 'pending' with the scanners still worth waiting for. */
export function evaluate(stack: readonly StackRule[], answers: ReadonlyMap<string, Answer>): Evaluation {
  const ignored: Evaluation['ignored'] = [];
  for (const e of stack) {
    const a = answers.get(e.name);
    if (a?.answer === 'deny' && (e.control === 'sufficient' || e.control === 'optional' || e.control === 'observe')) {
      ignored.push({ name: e.name, control: e.control, ...(a.reason !== undefined && { reason: a.reason }) });
    }
  }
  const possible = possibleVerdicts(stack, answers);
  if (possible.size > 1) {
    return { verdict: 'pending', waitingFor: neededScanners(stack, answers), ignored };
  }
  // The verdict is the same whatever the unanswered entries say, so walking with them as 'ok' (no effect)
  // finds it, and the entry that decided is always one that did answer.
  return { ...decide(stack, answers), waitingFor: [], ignored };
}

function decide(stack: readonly StackRule[], answers: ReadonlyMap<string, Answer>): Pick<Evaluation, 'verdict' | 'decidedBy' | 'reason'> {
  let failure: { name: string; reason?: string } | undefined;
  const vouchers: string[] = [];
  for (const e of stack) {
    const a = answers.get(e.name);
    if (!a || a.answer === 'ok' || e.control === 'observe') continue;
    const why = a.reason ? `: ${a.reason}` : '';
    if (a.answer === 'deny') {
      // Like PAM, an earlier required failure stays the reported cause when a requisite stops the walk.
      if (e.control === 'requisite' && !failure) return { verdict: 'deny', decidedBy: e.name, reason: `${e.name} (requisite) denied${why}` };
      if (e.control === 'requisite') break;
      if (e.control === 'required' && !failure) failure = { name: e.name, ...(a.reason !== undefined && { reason: a.reason }) };
    } else if (e.control === 'sufficient') {
      if (!failure) return { verdict: 'allow', decidedBy: e.name, reason: `${e.name} (sufficient) allowed${why}` };
    } else {
      vouchers.push(e.name);
    }
  }
  if (failure) {
    const why = failure.reason ? `: ${failure.reason}` : '';
    return { verdict: 'deny', decidedBy: failure.name, reason: `${failure.name} (required) denied${why}` };
  }
  if (vouchers.length > 0) return { verdict: 'allow', decidedBy: vouchers[0]!, reason: `vouched for by ${vouchers.join(', ')}` };
  return { verdict: 'deny', reason: 'nobody vouched (a stack should end with a `default` entry that allows)' };
}

const EFFECT: Record<Control, string> = {
  required: 'deny: remember failure, go on; allow: remember success',
  requisite: 'deny: deny at once; allow: remember success',
  sufficient: 'deny: ignored (logged); allow: allow at once unless an earlier entry failed',
  optional: 'deny: ignored (logged); allow: remember success',
  observe: 'answers are recorded only, never change the verdict',
};

/** Human-readable walk-through of a stack, for `blessd check`. */
export function explainStack(stack: readonly StackRule[]): string {
  const width = Math.max(4, ...stack.map((e) => e.name.length));
  const lines = stack.map((e, i) => {
    const actor = e.actor && e.actor !== e.name ? ` (actor ${e.actor})` : '';
    const from = e.origin ? `  [${e.origin}]` : '';
    return `${String(i + 1).padStart(2)}. ${e.name.padEnd(width)}  ${e.control.padEnd(10)}  ${EFFECT[e.control]}${actor}${from}`;
  });
  lines.push('End of stack: a remembered failure denies; else a remembered success allows; else deny (nobody vouched).');
  for (const w of stackWarnings(stack)) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/** Shapes that are legal but almost certainly not what was meant. */
export function stackWarnings(stack: readonly StackRule[]): string[] {
  const warnings: string[] = [];
  const counting = stack.filter((e) => e.control !== 'observe');
  if (counting.length === 0) warnings.push('every entry is observe: every file is denied (nobody vouches)');
  else if (!stack.some((e) => e.actor === 'default')) {
    warnings.push('no `default` entry: a file that no scanner explicitly allows is denied');
  }
  return warnings;
}
