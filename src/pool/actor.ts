// Actor API v1: the interface between blessd and a scanner actor. An actor is a module whose default export is an
// ActorModule; it must not import anything else of the daemon (actors/ may only import this file and
// src/policy/answer.ts, as types). Third parties write to this file: change it only with a new ACTOR_API number.
import type { Answer } from '../policy/answer.js';

/** The actor API this blessd speaks. A manifest must carry the same `api`: another one is a named load error. */
export const ACTOR_API = 1;

export interface ActorManifest {
  /** The actor API the module was written for: 1. */
  api: typeof ACTOR_API;
  /** Scanner name; also the tag name: <namespace>.scanned-by.<name>. [a-z0-9][a-z0-9_-]* */
  name: string;
  version: string;
  // No `accesses`: a verdict is about a file's content, whatever the access that asked for it (one tag per
  // content, reused by every later open, read, mmap and exec). A manifest that names accesses is refused.
}

/** fstat(2) of the scanned descriptor, as numbers (nanosecond times as bigint, where precision matters). */
export interface ScanFileStat {
  dev: number;
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
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
  /** fstat of the descriptor (asked when called; the daemon's stamp is taken apart from it). */
  stat(): Promise<ScanFileStat>;
  /** One extended attribute of the file (`security.selinux`, `user.mime_type`), or null when it has none. */
  xattr(name: string): Promise<Buffer | null>;
  /** The names of the file's extended attributes. */
  xattrNames(): Promise<string[]>;
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
  /**
   * Release what init took (connections, child processes, open databases). Runs once, when the worker retires
   * the instance: replaced by a reload that loaded a new one, or at the pool's close (daemon stop, a finished
   * `blessd check`), bounded by the pool's closeTimeoutMs. A worker destroyed at a scan deadline cannot run it:
   * the process groups the actor tracked are killed instead.
   */
  close?(): Promise<void> | void;
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

/** Descriptor passing over unix sockets, for actors that hand the file to a scanning daemon (clamd's FILDES). */
export interface UnixSockets {
  /** sendmsg(2) with SCM_RIGHTS on a connected unix socket: `fd` rides on the first byte of `bytes`. Bytes sent. */
  sendFd(socketFd: number, fd: number, bytes: Buffer): number;
  /** getsockopt(SO_PEERCRED): the process at the other end of a connected unix socket. */
  peerCred(socketFd: number): { pid: number; uid: number; gid: number };
}

/**
 * Who is asking, and what the daemon lends an actor beyond Node's own API. The daemon always sets every field;
 * `api` and `unix` are optional only for actors initialised by hand (tests, tools).
 */
export interface ActorContext {
  /** The stack entry's scanner name (the tag name), which may differ from the manifest name. */
  name: string;
  /** The actor API of the daemon loading the module (ACTOR_API). */
  api?: number;
  unix?: UnixSockets;
}

export interface ActorModule {
  manifest: ActorManifest;
  /**
   * Called once per worker with this stack entry's options (from config.yaml, already parsed). The daemon always
   * passes `context`; it is optional only so that an actor can be initialised by hand (tests, tools).
   */
  init(options: Record<string, unknown>, context?: ActorContext): Promise<ActorInstance> | ActorInstance;
}
