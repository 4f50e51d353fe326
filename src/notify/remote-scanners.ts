// Out-of-process scanners: programs that connect to the control socket, register a scanner name, and answer the
// scan requests the daemon sends them (docs/protocol.md, "Scanners").
//
// Two ways in, one mechanism:
// - declared: config.yaml has a stack entry `actor: remote` with that name. Its control and failure policies come
//   from the config, and it stays in the stack while no client serves it: its scans then fail with
//   "no scanner connected", which the entry's onError answers (deny by default) without writing a tag.
// - dynamic: a client registers a name the config does not use. The daemon adds an entry for as long as the client
//   stays connected: `required` if it registered with mustPass: true, else `observe` (it scans, never gates),
//   placed before the first `default` entry like the must-pass directory's links.
// Every registration change runs the daemon's applier: it exempts the scanners' pids from the gate (they read the
// files they are asked about), rebuilds its stack, and forgets cached verdicts so files are judged again. The
// register op replies only once that is done, so a scanner is never asked before it is exempt.
//
// A request's deadline is pool.scanTimeout, counted from the call (queueing behind the client's concurrency
// included); then the entry's onTimeout answers. A disconnect answers every request in flight with the entry's
// onError.
import { STACK_ENTRY_DEFAULTS, type Control, type StackEntry } from '../config/types.js';
import type { ScanResult } from '../inode/services.js';
import { isAnswerKind, type Answer } from '../policy/answer.js';
import { resolveFailure } from '../pool/failure.js';
import type { ScanOutcome } from '../pool/scan-pool.js';
import { scanWithTags, type ScanContext } from '../daemon/scan-service.js';
import { identify, type FsidTable } from './file-identity.js';
import { ProtocolError, type WireScanRequest } from './protocol.js';

export const REMOTE_ACTOR = 'remote';

/** The connection a scanner registered on, as the registry needs it. */
export interface ScannerPeer {
  /** The scanner's process (exempt from the gate while registered); 0 for a peer on another host (the farm). */
  readonly pid: number;
  readonly label: string;
  /**
   * Send one scan request; `fd` goes along over SCM_RIGHTS if the peer takes descriptors, or its content follows the
   * line (a farm peer: the promise settles once it is handed to the socket). Throws or rejects if it cannot send.
   */
  sendScan(request: Omit<WireScanRequest, 'v' | 'event' | 'fd'>, fd: number): void | Promise<void>;
  /** Tell the peer a request timed out (it may drop its work). Best effort. */
  sendCancel(req: number): void;
}

interface Registration {
  name: string;
  peer: ScannerPeer;
  origin: 'config' | 'dynamic';
  control: Control;
  concurrency: number;
  inFlight: number;
  queue: Job[];
  answered: number;
  timeouts: number;
  since: number;
}

interface Job {
  req: number;
  reg: Registration;
  file: { fd: number; size: number; path: string };
  sent: boolean;
  done: boolean;
  started: number;
  timer: NodeJS.Timeout;
  resolve: (outcome: ScanOutcome) => void;
}

export interface ScannerStatus {
  name: string;
  origin: 'config' | 'dynamic';
  control: Control;
  connected: boolean;
  pid?: number;
  client?: string;
  inFlight: number;
  queued: number;
  answered: number;
  timeouts: number;
}

export class RemoteScanners {
  private readonly regs = new Map<string, Registration>();
  private readonly jobs = new Map<number, Job>();
  private nextReq = 1;
  /** The config stack as last applied: which names are declared remote, which are taken by other actors. */
  private configStack: readonly StackEntry[] = [];

  private applier: () => Promise<void> = async () => {};
  private applying: Promise<void> = Promise.resolve();

  constructor(private readonly fsids: FsidTable) {}

  /** The daemon's reaction to a registration change (never rejects: it logs its own failures). */
  setApplier(apply: () => Promise<void>) {
    this.applier = apply;
  }

  /** Resolves when the last registration change has been applied to the stack and the gate. */
  applied(): Promise<void> {
    return this.applying;
  }

  private changed() {
    const previous = this.applying;
    this.applying = previous.then(() => this.applier()); // in order: a leave never overtakes the join before it
  }

  /** Register `name` for `peer`. Throws ProtocolError if the name is taken or belongs to a built-in entry. */
  register(name: string, peer: ScannerPeer, opts: { mustPass: boolean; concurrency: number }): { origin: 'config' | 'dynamic'; control: Control } {
    const held = this.regs.get(name);
    if (held) throw new ProtocolError('ALREADY_REGISTERED', `scanner ${name} is already served by ${held.peer.label}`);
    const declared = this.configStack.find((e) => e.name === name);
    if (declared && declared.actor !== REMOTE_ACTOR) {
      throw new ProtocolError('BAD_REQUEST', `scanner ${name} is a ${declared.actor} entry of the stack (${declared.origin}); pick another name`);
    }
    const origin = declared ? 'config' : 'dynamic';
    const control: Control = declared ? declared.control : opts.mustPass ? 'required' : 'observe';
    this.regs.set(name, { name, peer, origin, control, concurrency: opts.concurrency, inFlight: 0, queue: [], answered: 0, timeouts: 0, since: Date.now() });
    this.changed();
    return { origin, control };
  }

  /** The peer went away (or unregistered): its names leave, its requests fail (onError). */
  unregisterPeer(peer: ScannerPeer): string[] {
    const names: string[] = [];
    for (const reg of [...this.regs.values()]) {
      if (reg.peer !== peer) continue;
      this.regs.delete(reg.name);
      names.push(reg.name);
      for (const job of [...this.jobs.values()]) {
        if (job.reg === reg) this.finish(job, { kind: 'error', code: 'crash', message: `${reg.name}: the scanner disconnected (${peer.label})` });
      }
    }
    if (names.length > 0) this.changed();
    return names;
  }

  /** An answer from `peer` to request `req`. Throws ProtocolError for a request it does not hold or a bad answer. */
  answer(peer: ScannerPeer, req: unknown, answer: unknown, reason: unknown): void {
    const job = typeof req === 'number' ? this.jobs.get(req) : undefined;
    if (!job || job.reg.peer !== peer || !job.sent) throw new ProtocolError('UNKNOWN_REQUEST', `no scan request ${JSON.stringify(req)} is pending for this client (timed out?)`);
    if (!isAnswerKind(answer)) throw new ProtocolError('BAD_REQUEST', `answer: "answer" must be deny, ok or allow (got ${JSON.stringify(answer)})`);
    if (reason !== undefined && (typeof reason !== 'string' || reason.length > 1000)) throw new ProtocolError('BAD_REQUEST', 'answer: "reason" must be a string of at most 1000 characters');
    if (answer === 'deny' && !reason) reason = `${job.reg.name}: denied`;
    job.reg.answered++;
    const outcome: ScanOutcome = { kind: 'answer', answer, ms: Date.now() - job.started, generation: '' };
    if (reason !== undefined) outcome.reason = reason as string;
    this.finish(job, outcome);
  }

  /** The config stack with the dynamic entries inserted (before the first `default`, else at the end). */
  stackWith(configStack: readonly StackEntry[]): StackEntry[] {
    this.configStack = configStack;
    const dynamic: StackEntry[] = [...this.regs.values()]
      .filter((r) => r.origin === 'dynamic')
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((r) => ({
        ...STACK_ENTRY_DEFAULTS,
        actor: REMOTE_ACTOR,
        builtin: true,
        name: r.name,
        control: r.control,
        options: {},
        baseDir: '/',
        origin: `socket (${r.peer.label})`,
      }));
    const at = configStack.findIndex((e) => e.actor === 'default');
    const stack = [...configStack];
    stack.splice(at < 0 ? stack.length : at, 0, ...dynamic);
    return stack;
  }

  /** Pids of connected scanners: the gate must let them read what they are asked to scan. */
  pids(): number[] {
    return [...new Set([...this.regs.values()].map((r) => r.peer.pid).filter((pid) => pid > 0))];
  }

  status(): ScannerStatus[] {
    const out: ScannerStatus[] = [];
    for (const e of this.configStack) {
      if (e.actor === REMOTE_ACTOR && !this.regs.has(e.name)) {
        out.push({ name: e.name, origin: 'config', control: e.control, connected: false, inFlight: 0, queued: 0, answered: 0, timeouts: 0 });
      }
    }
    for (const r of this.regs.values()) {
      out.push({ name: r.name, origin: r.origin, control: r.control, connected: true, pid: r.peer.pid, client: r.peer.label, inFlight: r.inFlight, queued: r.queue.length, answered: r.answered, timeouts: r.timeouts });
    }
    return out;
  }

  /** One remote scanner on one file: through the tag lease and conditional bless like any scanner. */
  async scan(fd: number, ctx: ScanContext): Promise<ScanResult> {
    const { entry } = ctx;
    if (!this.regs.has(entry.name)) {
      // Nobody serves it: the entry's onError answers, and no tag is written (a scanner that connects later must
      // not find a stored "deny: not connected").
      const r = resolveFailure({ kind: 'error', code: 'load', message: `${entry.name}: no scanner connected` }, entry, { retried: true });
      return { name: entry.name, answer: r as Answer, source: 'failure-policy', transient: true };
    }
    return scanWithTags(fd, { ...ctx, run: (file) => this.request(entry, file, ctx.timeoutMs) });
  }

  private request(entry: StackEntry, file: { fd: number; size: number; path: string }, timeoutMs: number): Promise<ScanOutcome> {
    const reg = this.regs.get(entry.name);
    if (!reg) return Promise.resolve({ kind: 'error', code: 'crash', message: `${entry.name}: the scanner disconnected` });
    if (file.size > entry.maxSize) {
      return Promise.resolve({ kind: 'error', code: 'too-large', message: `${entry.name}: ${file.path} is ${file.size} bytes, over the limit of ${entry.maxSize}` });
    }
    return new Promise((resolve) => {
      const job: Job = { req: this.nextReq++, reg, file, sent: false, done: false, started: Date.now(), resolve, timer: undefined as unknown as NodeJS.Timeout };
      job.timer = setTimeout(() => {
        reg.timeouts++;
        if (job.sent) reg.peer.sendCancel(job.req);
        this.finish(job, { kind: 'error', code: 'timeout', message: `${entry.name}: no answer for ${file.path} within ${timeoutMs} ms` });
      }, timeoutMs);
      this.jobs.set(job.req, job);
      reg.queue.push(job);
      this.pump(reg);
    });
  }

  private pump(reg: Registration) {
    while (reg.inFlight < reg.concurrency && reg.queue.length > 0 && this.regs.get(reg.name) === reg) {
      const job = reg.queue.shift()!;
      job.sent = true;
      reg.inFlight++;
      try {
        const id = identify(job.file.fd, this.fsids);
        const sent = reg.peer.sendScan({ req: job.req, scanner: reg.name, path: job.file.path, size: job.file.size, ...id }, job.file.fd);
        sent?.catch((err: Error) => this.finish(job, { kind: 'error', code: 'crash', message: `${reg.name}: cannot send the request: ${err.message}` }));
      } catch (err) {
        this.finish(job, { kind: 'error', code: 'crash', message: `${reg.name}: cannot send the request: ${(err as Error).message}` });
      }
    }
  }

  private finish(job: Job, outcome: ScanOutcome) {
    if (job.done) return;
    job.done = true;
    clearTimeout(job.timer);
    this.jobs.delete(job.req);
    if (job.sent) job.reg.inFlight--;
    else job.reg.queue = job.reg.queue.filter((j) => j !== job);
    job.resolve(outcome);
    this.pump(job.reg);
  }
}

/** The tag generation of a remote entry: `options.generation` from the config (a new one makes older tags stale). */
export function remoteGeneration(entry: StackEntry): string {
  const g = entry.options['generation'];
  return `remote:${typeof g === 'string' || typeof g === 'number' ? String(g) : '1'}`;
}
