// The interface between blessd and a scanner actor. An actor is a module whose default export is an ActorModule;
// it must not import anything else of the daemon (actors/ may only import this file and src/policy/answer.ts).
import type { Answer } from '../policy/answer.js';

export type AccessKind = 'open' | 'read' | 'exec';

export interface ActorManifest {
  /** Scanner name; also the tag name: <namespace>.scanned-by.<name>. [a-z0-9][a-z0-9_-]* */
  name: string;
  version: string;
  /** Accesses this actor cares about (default: all). */
  accesses?: AccessKind[];
}

/** What a scan gets. The fd is the daemon's own read-only descriptor (shared within the process: do not close it). */
export interface ScanFile {
  fd: number;
  size: number;
  /** For display and path rules only: the file may have been renamed or unlinked since. */
  path: string;
  /** Read `length` bytes at `offset` through the fd (short at end of file). */
  read(offset: number, length: number): Promise<Buffer>;
  /** Stream the whole file in large chunks. */
  chunks(chunkSize?: number): AsyncIterable<Buffer>;
  /**
   * Before spawning a program for this scan: if blessd gives the scan up (its timeout, a cancel, shutdown) it
   * kills the program's whole process group with SIGKILL — the worker running the actor is destroyed then and
   * cannot. Spawn the program `detached` (its pid is then its pgid) with `env` merged into its environment (the
   * marker finds the group when blessd gives up between the spawn and `started`), call `started(pid)` at once, and
   * `done()` when the group is gone.
   */
  trackProcessGroup?(): ProcessGroupTracker;
}

export interface ProcessGroupTracker {
  env: Record<string, string>;
  started(pgid: number): void;
  done(): void;
}

export interface ActorInstance {
  /** Generation of this actor's verdicts (e.g. a digest of its databases): a tag of another generation is stale. */
  generation: string;
  scan(file: ScanFile): Promise<Answer>;
  /** Release what init took (databases, child processes). */
  close?(): Promise<void>;
  /** Problems init chose to skip rather than fail on (e.g. bad database lines, as `file:line: what`), for the log. */
  warnings?: string[];
  /**
   * For engines whose rules change outside blessd (a daemon that reloads its own databases): the generation now.
   * Asked at every load (start, reload) and then every `generationRefreshMs`; a new answer makes older tags stale
   * and drops every cached verdict.
   */
  currentGeneration?(): Promise<string>;
  generationRefreshMs?: number;
  /**
   * Processes that read scanned files through the passed descriptor on this actor's behalf (a scanning daemon
   * the fd is sent to over SCM_RIGHTS): the gate lets their accesses through, as it does the daemon's own.
   * Asked after every task; an actor must not let such a process read before its pid has been reported once.
   */
  helperPids?(): number[];
}

/** Who is asking, for actors that tell the outside world (e.g. the exec actor sets BLESSD_SCANNER). */
export interface ActorContext {
  /** The stack entry's scanner name (the tag name), which may differ from the manifest name. */
  name: string;
}

export interface ActorModule {
  manifest: ActorManifest;
  /** Called once per worker with this stack entry's options (from config.yaml, already parsed). */
  init(options: Record<string, unknown>, context?: ActorContext): Promise<ActorInstance> | ActorInstance;
}
