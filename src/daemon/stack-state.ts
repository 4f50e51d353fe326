// The policy stack the daemon judges with, and each scanner's current tag generation. Overview of what it owns:
// - load(): the stack from config + must-pass directory, each pool actor described once for its generation;
// - apply(): the effective stack (config + remote scanners on the socket) with the bump counters from stateDir;
// - answersOf(): the stack's answers a file already holds (valid result tags, plus the constant `default` ones).
// It never touches a file or the gate: callers read tags and answer events.
import type { Config, StackEntry } from '../config/types.js';
import type { NativeTagPolicy } from '../gate/types.js';
import type { JudgePolicy } from '../pool/tasks.js';
import type { ScanCounter } from '../pool/scan-counter.js';
import type { Answer } from '../policy/answer.js';
import { effectiveStack } from '../policy/must-pass.js';
import type { ScanPool } from '../pool/scan-pool.js';
import { currentGenerations, splitTagGeneration } from '../tags/index.js';
import type { TagReport } from '../tags/report.js';
import { REMOTE_ACTOR, remoteGeneration, type RemoteScanners } from '../notify/remote-scanners.js';
import type { WatchedEntry } from './generation-watch.js';
import type { Logger } from './logger.js';

export interface StackSnapshot {
  stack: StackEntry[];
  generations: Record<string, string>;
  configStack: StackEntry[];
  actorGenerations: Record<string, string>;
}

export class StackState {
  stack: StackEntry[] = [];
  generations: Record<string, string> = {};
  /** The stack from config + must-pass, and its actors' generations, before remote scanners join (apply). */
  private configStack: StackEntry[] = [];
  private actorGenerations: Record<string, string> = {};

  constructor(
    private readonly pool: ScanPool,
    private readonly remote: RemoteScanners,
    private readonly log: Logger,
  ) {}

  /**
   * The stack (config + must-pass directory) and each scanner's current tag generation. Returns the entries whose
   * actors want their generation asked again on a timer (clamd: its databases change outside blessd).
   */
  async load(c: Config): Promise<WatchedEntry[]> {
    const { stack, warnings } = await effectiveStack(c);
    for (const w of warnings) this.log.warn({ where: (w as any).path ?? (w as any).origin }, (w as any).message ?? String(w));
    const actorGenerations: Record<string, string> = {};
    const watched: WatchedEntry[] = [];
    for (const e of stack) {
      if (e.actor === REMOTE_ACTOR) {
        actorGenerations[e.name] = remoteGeneration(e); // served over the socket: nothing to load in the pool
        continue;
      }
      let d: Awaited<ReturnType<ScanPool['describe']>>;
      try {
        d = await this.pool.describe({ name: e.name, actor: e.actor, options: e.options as Record<string, unknown>, maxSize: e.maxSize });
      } catch (err) {
        // Where it was declared, as `blessd check` says it: "config.yaml:14:5: sig (signature): ...".
        throw Object.assign(new Error(`${e.origin}: ${e.name} (${e.actor}): ${(err as Error).message}`, { cause: err }), { code: (err as { code?: string }).code });
      }
      for (const w of d.warnings) this.log.warn({ scanner: e.name }, w);
      actorGenerations[e.name] = d.generation;
      if (d.generationRefreshMs !== undefined) watched.push({ entry: e, everyMs: d.generationRefreshMs });
    }
    await this.apply(c, stack, actorGenerations);
    this.log.info({ stack: this.stack.map((e) => `${e.name}:${e.control}`) }, 'policy stack loaded');
    return watched;
  }

  /** The actor part of a scanner's generation (without the bump counter). */
  actorGeneration(name: string): string | undefined {
    return this.actorGenerations[name];
  }

  /** A watched actor answered a new generation: the tag generations follow. */
  async setActorGeneration(c: Config, name: string, generation: string) {
    await this.apply(c, this.configStack, { ...this.actorGenerations, [name]: generation });
  }

  /** The effective stack: config + must-pass + remote scanners registered now; generations with bump counters. */
  async apply(c: Config, configStack = this.configStack, actorGenerations = this.actorGenerations) {
    const stack = this.remote.stackWith(configStack);
    const remoteGens = Object.fromEntries(stack.filter((e) => e.actor === REMOTE_ACTOR).map((e) => [e.name, remoteGeneration(e)]));
    this.generations = await currentGenerations(c.stateDir, { ...actorGenerations, ...remoteGens });
    this.stack = stack;
    this.configStack = configStack;
    this.actorGenerations = actorGenerations;
    this.onApplied?.();
  }

  /** Called after every change of stack or generations (the daemon hands the native reader the new policy). */
  onApplied?: () => void;

  snapshot(): StackSnapshot {
    return { stack: this.stack, generations: this.generations, configStack: this.configStack, actorGenerations: this.actorGenerations };
  }

  restore(s: StackSnapshot) {
    this.stack = s.stack;
    this.generations = s.generations;
    this.configStack = s.configStack;
    this.actorGenerations = s.actorGenerations;
    this.onApplied?.();
  }

  entry(name: string): StackEntry | undefined {
    return this.stack.find((e) => e.name === name);
  }

  /** The stack's answers a file already holds: valid result tags, plus the constant ones. */
  answersOf(report: TagReport): Map<string, Answer> {
    // The built-in `default` answers the same for every file: no scan, no tag, no trip to a worker.
    const answers = new Map<string, Answer>(this.constantAnswers());
    const names = new Set(this.stack.map((e) => e.name));
    for (const t of report.tags) {
      if (t.judgement === 'valid' && t.value?.kind === 'result' && names.has(t.scanner)) {
        answers.set(t.scanner, t.value.reason === undefined ? { answer: t.value.answer } : { answer: t.value.answer, reason: t.value.reason });
      }
    }
    return answers;
  }

  /** Observe scanners without an answer yet: they scan but never gate. */
  observers(answers: ReadonlyMap<string, Answer>): string[] {
    return this.stack.filter((e) => e.control === 'observe' && !answers.has(e.name)).map((e) => e.name);
  }

  /**
   * The stack in the compact form the gate's reader thread settles misses with (native/tags): which scanners
   * count, their current generations, and the constant answers. Null where it must not settle: content stamps need
   * a digest, which is a full read.
   */
  nativePolicy(c: Config, key: Buffer, namespace: 'trusted' | 'user', denyResponse: number): NativeTagPolicy | null {
    if (c.tags.stamp === 'content') return null;
    const constants = new Map(this.constantAnswers());
    return {
      namespace,
      key,
      denyResponse,
      ctime: c.tags.stamp === 'ctime',
      rules: this.stack.map((e) => {
        const constant = constants.get(e.name)?.answer;
        const generation = this.generations[e.name];
        return { name: e.name, control: e.control, ...(generation !== undefined && { generation }), ...(constant !== undefined && { constant }) };
      }),
    };
  }

  private judgeCache?: { stack: StackEntry[]; generations: Record<string, string>; config: Config; key: Buffer; policy: JudgePolicy | null };

  /**
   * The stack as a judge task carries it to a worker (src/pool/judge-batch.ts), built again only when the stack,
   * the generations or the config change. Null where the cold path does not serve the stack (src/inode/cold.ts):
   * observe entries (they scan in the background lane), remote scanners (served on the socket), content stamps.
   */
  judgePolicy(c: Config, key: Buffer, namespace: 'trusted' | 'user', counter?: ScanCounter): JudgePolicy | null {
    const hit = this.judgeCache;
    if (hit && hit.stack === this.stack && hit.generations === this.generations && hit.config === c && hit.key === key) return hit.policy;
    let policy: JudgePolicy | null = null;
    if (c.tags.stamp !== 'content' && !this.stack.some((e) => e.control === 'observe' || e.actor === REMOTE_ACTOR)) {
      const constants = new Map(this.constantAnswers());
      policy = {
        rules: this.stack.map((e) => {
          const constant = constants.get(e.name);
          return constant ? { name: e.name, control: e.control, constant } : { name: e.name, control: e.control };
        }),
        generations: { ...this.generations },
        scanners: this.stack
          .filter((e) => !constants.has(e.name))
          .map((e) => {
            const g = this.generations[e.name];
            return {
              name: e.name,
              actor: e.actor,
              options: e.options as Record<string, unknown>,
              maxSize: e.maxSize,
              ...(g !== undefined && { generation: splitTagGeneration(g).actor }),
              onError: e.onError,
              onTimeout: e.onTimeout,
              onTooLarge: e.onTooLarge,
              ...(counter && { counter: counter.slot(e.name) }),
            };
          }),
        tags: { namespace, key: new Uint8Array(key), leaseMs: c.tags.lease, stampMode: c.tags.stamp },
        timeoutMs: c.pool.scanTimeout,
        ...(counter && { scanCounts: counter.shared }),
      };
    }
    this.judgeCache = { stack: this.stack, generations: this.generations, config: c, key, policy };
    return policy;
  }

  /** Answers that need no scan: built-in `default` entries (their answer is their option). */
  constantAnswers(): [string, Answer][] {
    return this.stack
      .filter((e) => e.builtin && e.actor === 'default' && (e.options['answer'] === 'allow' || e.options['answer'] === 'deny'))
      .map((e) => [e.name, { answer: e.options['answer'] as 'allow' | 'deny', reason: 'default' }]);
  }
}
