// The life of one inode while it has work in flight. Created on the first event that needs JS, dropped when it
// reaches a verdict: from then on the verdict lives in the tags on disk and in the native verdict table.
//
//   clean ──tags read──► (decided?) ──► blessed | denied
//     │                       └──► scanning ──answers──► blessed | denied
//     └───────── any content change ──► dirty ──writer closed──► settling ──debounce──► clean
//                                                                       └──(pool.rescan: onRead, nobody waits)──► unjudged
import type { JudgedStamp } from '../gate/types.js';
import { assign, setup } from 'xstate';
import type { Answer } from '../policy/answer.js';
import { concludeAllow, concludeDeny } from './conclude.js';
import { readTags, runScanners, type ScannedEvent } from './scan-actors.js';
import type { InodeServices, StackVerdict, Waiter } from './services.js';

export interface InodeInput {
  services: InodeServices;
  /** The daemon's own read-only descriptor of the file; the registry closes it when the machine stops. */
  fd: number;
  path: string;
  /** Start dirty (a change event created this machine): clear tags first. */
  dirty?: boolean;
  /** Nobody waits (the crawl): scan in the background lane. */
  background?: boolean;
  /** Whose access started this judgement: its scans take that uid's turn in the fair pool queue. */
  uid?: number;
  /** Accesses already waiting (a cold judgement handed over to this machine at a change). */
  waiting?: Waiter[];
}

export interface InodeContext extends Omit<InodeInput, 'waiting'> {
  answers: Map<string, Answer>;
  waiting: Waiter[];
  /** Bumped by every change: scan results of an older epoch describe content that is gone. */
  epoch: number;
  /** The stack's evaluation of `answers`, kept with them (walked once per new answer). */
  verdict?: StackVerdict;
  /** Scanners of this epoch that have not answered yet. */
  inFlight: string[];
  /** The change that made us dirty was already the writer's close (modify and close-write can come as one record). */
  closedAlready: boolean;
  /** Scanners of this epoch whose answer stands in for a failure: a verdict that rests on one is not cached. */
  transient: string[];
  /** The file as this epoch's judgement began (entering clean): size and mtime must still hold at the bless. */
  judgedFrom?: JudgedStamp;
}

export type InodeEvent =
  | { type: 'ACCESS'; waiter: Waiter }
  | { type: 'CHANGE'; closed: boolean }
  | ScannedEvent;

const answerAll = (ctx: InodeContext, verdict: 'allow' | 'deny') => {
  for (const w of ctx.waiting) ctx.services.answer(w, verdict);
};

export { cacheable } from './conclude.js';

export const inodeMachine = setup({
  types: {
    context: {} as InodeContext,
    events: {} as InodeEvent,
    input: {} as InodeInput,
  },
  actors: { readTags, runScanners },
  guards: {
    startsDirty: ({ context }) => context.dirty === true,
    // The stack is walked once per new answer (rememberTags, rememberAnswer), never per guard or transition.
    allowed: ({ context }) => context.verdict?.verdict === 'allow',
    denied: ({ context }) => context.verdict?.verdict === 'deny',
    nothingLeft: ({ context }) => context.inFlight.length === 0,
    currentEpoch: ({ context, event }) => 'epoch' in event && event.epoch === context.epoch,
    passWhileWriting: ({ context }) => context.services.whileWriting === 'allow',
    writerClosed: ({ event }) => event.type === 'CHANGE' && event.closed,
    closedAlready: ({ context }) => context.closedAlready,
    // pool.rescan: onRead — a closed file nobody waits for is left unjudged until someone reads it.
    rescanOnRead: ({ context }) => context.services.rescan === 'onRead' && context.waiting.length === 0,
  },
  actions: {
    noteClose: assign({ closedAlready: ({ event }) => event.type === 'CHANGE' && event.closed }),
    forgetClose: assign({ closedAlready: false }),
    hold: assign({ waiting: ({ context, event }) => (event.type === 'ACCESS' ? [...context.waiting, event.waiter] : context.waiting) }),
    passNow: ({ context, event }) => {
      if (event.type === 'ACCESS') context.services.answer(event.waiter, 'allow');
    },
    passWaitingWhileWriting: assign({
      waiting: ({ context }) => {
        if (context.services.whileWriting !== 'allow') return context.waiting;
        answerAll(context, 'allow');
        return [];
      },
    }),
    rememberTags: assign(({ context }, answers: Map<string, Answer>) => ({ answers, verdict: context.services.evaluate(answers) })),
    chooseScanners: assign({
      inFlight: ({ context }) => [...context.services.needed(context.answers), ...context.services.observers(context.answers)],
    }),
    undecidable: assign({
      verdict: ({ context }) => ({ verdict: 'deny' as const, reason: 'no scanner left that could decide', waitingFor: context.verdict?.waitingFor ?? [] }),
    }),
    rememberAnswer: assign(({ context, event }) => {
      const name = event.type === 'SCANNED' ? event.result.name : event.type === 'SCAN_BROKEN' ? event.name : '';
      const answers = new Map(context.answers);
      if (event.type === 'SCANNED') answers.set(event.result.name, event.result.answer);
      // A scanner that broke outside its failure policy counts as a deny: fail closed.
      if (event.type === 'SCAN_BROKEN') answers.set(event.name, { answer: 'deny', reason: `scanner failed: ${event.error}` });
      // Answers that rest on a failure (timeout, crash...) hold for this access only: never cached or tagged.
      const failed = event.type === 'SCAN_BROKEN' || (event.type === 'SCANNED' && event.result.transient === true);
      const rest = context.transient.filter((n) => n !== name);
      return { inFlight: context.inFlight.filter((n) => n !== name), answers, verdict: context.services.evaluate(answers), transient: failed ? [...rest, name] : rest };
    }),
    goDirty: assign(({ context }) => {
      const cleared = context.services.clearTags(context.fd);
      context.services.forget(context.fd);
      context.services.notify('dirty', { fd: context.fd, path: context.path, cleared });
      return { epoch: context.epoch + 1, answers: new Map<string, Answer>(), verdict: undefined, dirty: false, transient: [] };
    }),
    stampJudgement: assign({ judgedFrom: ({ context }) => context.services.stampOf(context.fd) }),
    // ctime as it is at the verdict, after our own tag writes: what moves it later is someone else's.
    bless: ({ context }) => {
      const from = context.judgedFrom;
      const now = from && context.services.stampOf(context.fd);
      concludeAllow({ ...context, ...(from && now && { judged: { size: from.size, mtimeNs: from.mtimeNs, ctimeNs: now.ctimeNs } }) });
    },
    condemn: ({ context }) => concludeDeny(context),
  },
  delays: {
    debounce: ({ context }) => context.services.rescanDebounceMs,
  },
}).createMachine({
  id: 'inode',
  context: ({ input }) => ({ ...input, answers: new Map(), waiting: input.waiting ?? [], epoch: 0, inFlight: [], closedAlready: false, transient: [] }),
  initial: 'start',
  states: {
    start: {
      description: 'Routing: a machine born from a change event starts dirty, any other starts clean.',
      always: [{ guard: 'startsDirty', target: 'dirty' }, { target: 'clean' }],
    },
    clean: {
      description: 'Unchanged since we last looked, not yet judged: reading the verdict tags on disk.',
      entry: 'stampJudgement',
      invoke: {
        src: 'readTags',
        input: ({ context }) => ({ services: context.services, fd: context.fd }),
        onDone: { target: 'deciding', actions: { type: 'rememberTags', params: ({ event }) => event.output } },
        // No readable tags (no xattr support, a vanished file): judge by scanning.
        onError: { target: 'deciding', actions: { type: 'rememberTags', params: () => new Map<string, Answer>() } },
      },
      on: {
        ACCESS: { actions: 'hold' },
        CHANGE: { target: 'dirty', actions: 'noteClose' },
      },
    },
    deciding: {
      description: 'The stack looks at the answers it has: valid tags, or fresh scans.',
      always: [
        { guard: 'allowed', target: 'blessed' },
        { guard: 'denied', target: 'denied' },
        { target: 'scanning' },
      ],
    },
    scanning: {
      description: 'The missing scanners run in the pool; each answer may decide early (requisite deny, sufficient allow).',
      entry: 'chooseScanners',
      invoke: {
        src: 'runScanners',
        input: ({ context }) => ({ services: context.services, fd: context.fd, names: context.inFlight, epoch: context.epoch, background: context.background === true && context.waiting.length === 0, uid: context.uid }),
      },
      on: {
        ACCESS: { actions: 'hold' },
        CHANGE: { target: 'dirty', actions: 'noteClose' },
        SCANNED: { guard: 'currentEpoch', actions: 'rememberAnswer' },
        SCAN_BROKEN: { guard: 'currentEpoch', actions: 'rememberAnswer' },
      },
      // Checked after every answer: the stack may decide before the slower scanners finish (they still write tags).
      always: [
        { guard: 'allowed', target: 'blessed' },
        { guard: 'denied', target: 'denied' },
        { guard: 'nothingLeft', target: 'denied', actions: 'undecidable' },
      ],
    },
    dirty: {
      description: 'Content changed: tags cleared, subscribers told, the kernel asks again. Readers wait for the rescan (or pass, per whileWriting).',
      entry: ['goDirty', 'passWaitingWhileWriting'],
      always: { guard: 'closedAlready', target: 'settling', actions: 'forgetClose' },
      on: {
        ACCESS: [{ guard: 'passWhileWriting', actions: 'passNow' }, { actions: 'hold' }],
        CHANGE: [{ guard: 'writerClosed', target: 'settling' }],
      },
    },
    settling: {
      description: 'The writer closed; wait a moment for the next write before rescanning — unless a reader is waiting: then at once.',
      always: { guard: 'rescanOnRead', target: 'unjudged' },
      after: { debounce: 'clean' },
      on: {
        ACCESS: { target: 'clean', actions: 'hold' },
        CHANGE: [{ guard: 'writerClosed', target: 'settling', reenter: true }, { target: 'dirty', actions: 'noteClose' }],
      },
    },
    unjudged: {
      description: 'pool.rescan: onRead, written and closed, nobody waiting: tags cleared, no verdict cached; its next read judges it like a file never seen.',
      type: 'final',
    },
    blessed: {
      description: 'Passed: tags written, ignore mark added, waiters allowed. The machine ends; the kernel stays silent.',
      type: 'final',
      entry: 'bless',
    },
    denied: {
      description: 'A bad verdict: waiters refused, the native table refuses the next ones without asking JS.',
      type: 'final',
      entry: 'condemn',
    },
  },
});
