// The handle a yara actor keeps on its engine process (engine-process.ts): start = compile, scan with a deadline,
// and on a missed deadline kill the process (SIGKILL) and start a fresh one with the same rules. A process, not a
// thread: a native scan cannot be interrupted, and a thread stuck in one would also hold up the pool's shutdown
// (a worker's exit joins its threads). Scans that arrive while it restarts wait for it, within their own deadline.
// The process never sees a guarded file: it gets the bytes over its IPC channel.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ActorError } from '../common/errors.js';
import type { RuleSource } from './sources.js';

const ENGINE_FILE = fileURLToPath(new URL('./engine-process.js', import.meta.url));

export class YaraTimeoutError extends Error {
  readonly code = 'YARA_TIMEOUT';
}

type Reply = { id: number; matches?: string[]; error?: string };

export class YaraEngine {
  private worker!: ChildProcess;
  private ready!: Promise<void>;
  private nextId = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private closed = false;
  warnings: string[] = [];

  private constructor(
    private readonly actor: string,
    private readonly sources: RuleSource[],
  ) {}

  /** Compile the rules in a new engine thread; rejects with the first compile error, as `file:line:col: what`. */
  static async start(actor: string, sources: RuleSource[]): Promise<YaraEngine> {
    const e = new YaraEngine(actor, sources);
    e.spawn();
    try {
      await e.ready;
    } catch (err) {
      e.close();
      throw err;
    }
    return e;
  }

  async scan(data: Buffer, timeoutMs: number): Promise<string[]> {
    if (this.closed) throw new ActorError('ACTOR_READ', `${this.actor}: the engine was closed`);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new YaraTimeoutError(`${this.actor}: no result within ${timeoutMs} ms`)), timeoutMs);
    });
    deadline.catch(() => {});
    const id = this.nextId++;
    try {
      await Promise.race([this.ready, deadline]);
      const reply = new Promise<Reply>((resolve) => this.waiting.set(id, resolve));
      this.worker.send({ id, data });
      const r = await Promise.race([reply, deadline]);
      if (r.error !== undefined) throw new ActorError('ACTOR_READ', `${this.actor}: ${r.error}`);
      return r.matches ?? [];
    } catch (err) {
      if (err instanceof YaraTimeoutError && this.waiting.has(id)) this.restart();
      throw err;
    } finally {
      clearTimeout(timer);
      this.waiting.delete(id);
    }
  }

  close(): void {
    this.closed = true;
    this.worker?.kill('SIGKILL');
  }

  private spawn() {
    // 'advanced' serialization: Buffers cross as bytes, not as JSON arrays.
    const w = fork(ENGINE_FILE, [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
    this.worker = w;
    this.ready = new Promise<void>((resolve, reject) => {
      w.on('message', (m: { ready?: boolean; warnings?: string[]; compileError?: string } & Partial<Reply>) => {
        if (m.ready) {
          this.warnings = m.warnings ?? [];
          // Idle from now on: an engine must not keep its parent alive (a scan's own timer does meanwhile).
          w.unref();
          (w.channel as { unref?(): void } | undefined)?.unref?.();
          resolve();
        } else if (m.compileError !== undefined) {
          reject(new ActorError('ACTOR_DATABASE', `${this.actor}: ${m.compileError}`));
        } else if (m.id !== undefined) this.waiting.get(m.id)?.(m as Reply);
      });
      w.on('error', (err) => reject(new ActorError('ACTOR_DATABASE', `${this.actor}: engine process failed: ${err.message}`, { cause: err })));
      w.on('exit', (code, signal) => {
        reject(new ActorError('ACTOR_DATABASE', `${this.actor}: engine process exited (${code ?? signal}) before its rules compiled`));
        // Whoever still waits on this thread gets an error now, not at its deadline.
        if (w !== this.worker) return;
        for (const [id, resolve] of this.waiting) resolve({ id, error: `the engine process ended (${code ?? signal})` });
      });
    });
    this.ready.catch(() => {});
    w.send({ sources: this.sources });
  }

  private restart() {
    if (this.closed) return;
    const old = this.worker;
    const pending = [...this.waiting];
    this.waiting.clear();
    this.spawn();
    old.kill('SIGKILL');
    for (const [id, resolve] of pending) resolve({ id, error: 'the engine was restarted after a scan ran past its deadline' });
  }
}
