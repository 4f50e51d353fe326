// The typed, fully defaulted shape of config.yaml. Sizes are bytes, durations milliseconds, paths absolute.
// The loader (load.ts) is the only producer; everything it returns is deeply frozen.
import type { WaitMode } from '../gate/types.js';
import { builtInActorNames } from '../pool/built-ins.js';

export const CONTROLS = ['required', 'requisite', 'sufficient', 'optional', 'observe'] as const;
export type Control = (typeof CONTROLS)[number];

/**
 * Actors that ship with blessd: every module in actors/ (src/pool/built-ins.ts), and `remote` (out-of-process
 * scanners, answered by the daemon). Anything else in `actor:` must be a path to a .js module.
 */
export function builtinActors(): readonly string[] {
  return [...builtInActorNames(), 'remote'];
}

export const ON_FAILURE = ['deny', 'ok', 'retry'] as const;
export type OnFailure = (typeof ON_FAILURE)[number];
export const ON_TOO_LARGE = ['deny', 'ok', 'allow'] as const;
export type OnTooLarge = (typeof ON_TOO_LARGE)[number];

export const GUARD_KINDS = ['tree', 'mount', 'filesystem'] as const;
export type GuardKind = (typeof GUARD_KINDS)[number];
export const WAIT_MODES = ['read', 'open'] as const satisfies readonly WaitMode[];

export const DENY_ERRNOS = ['EPERM', 'EIO', 'EAGAIN', 'EBUSY', 'ETXTBSY', 'ENOSPC', 'EDQUOT'] as const;
export type DenyErrno = (typeof DENY_ERRNOS)[number];
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const MUST_PASS_POSITIONS = ['beforeDefault', 'end'] as const;
export type MustPassPosition = (typeof MUST_PASS_POSITIONS)[number];

/** Scanner and tag names: they end up in xattr names and must stay short and shell-safe. */
export const SCANNER_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export interface StackEntry {
  /** A built-in actor name, or the absolute path of a .js module. */
  actor: string;
  builtin: boolean;
  /** Scanner and tag name, unique within the stack. */
  name: string;
  control: Control;
  /** Free-form, handed to the actor's init(). Known path options of built-ins are already absolute. */
  options: Readonly<Record<string, unknown>>;
  /** Bytes; larger files get onTooLarge instead of a scan. */
  maxSize: number;
  onError: OnFailure;
  onTimeout: OnFailure;
  onTooLarge: OnTooLarge;
  /** Directory that relative options resolve against (the config file's, or the must-pass directory). */
  baseDir: string;
  /** Where this entry was declared, for messages: "config.yaml:14:5" or a must-pass link path. */
  origin: string;
}

export interface Guard {
  path: string;
  kind: GuardKind;
  wait: WaitMode;
  create: boolean;
  /** Fill a directory created by `create` with demo files: clean text files and the EICAR test file. */
  demo: boolean;
  /** Where this guard was declared, for messages: "config.yaml:4:11". */
  origin: string;
}

export interface Config {
  /** Absolute path of the file this came from. */
  file: string;
  stateDir: string;
  tags: {
    namespace: 'trusted' | 'user';
    keyFile: string;
    stamp: 'ctime' | 'mtime' | 'content';
    lease: number;
  };
  guards: readonly Guard[];
  gate: {
    deadline: number;
    /** How long all events of one access may wait together; then its later events are answered at once. */
    accessDeadline: number;
    /** retry: retryErrno (the default); deny: denyErrno; allow: serve unjudged content (logged). */
    onDeadline: 'retry' | 'deny' | 'allow';
    maxPending: number;
    /** One uid's share of maxPending; past it, that uid's events get retryErrno. */
    maxPendingPerUid: number;
    denyErrno: DenyErrno;
    /** The retryable refusal of deadline (retry) and overload answers. */
    retryErrno: DenyErrno;
    whileWriting: 'wait' | 'allow';
    audit: boolean;
    /** How often /proc/<pid>/maps is swept for shared writable mappings of guarded files (ms); 0: never. */
    sharedMapSweep: number;
    /** The native walk that settles files by their valid tags after a start, before anyone accesses them. */
    settleWalk: { enabled: boolean; filesPerSecond: number };
  };
  exempt: {
    uids: readonly number[];
    executables: readonly string[];
    /** The globs as written (absolute or starting with **). */
    paths: readonly string[];
    /** One matcher per glob, same order. Use isExemptPath(). */
    pathMatchers: readonly RegExp[];
  };
  pool: {
    threads: number;
    scanTimeout: number;
    rescanDebounce: number;
    /** When a written file is scanned again: after its writer closes (and the debounce), or at its next read. */
    rescan: 'onClose' | 'onRead';
    /** Files one uid may have in judgement at once; its next unjudged access is answered EAGAIN (logged). */
    queuePerUid: number;
  };
  stack: readonly StackEntry[];
  mustPass: {
    dir: string | null;
    control: Control;
    position: MustPassPosition;
  };
  socket: {
    path: string;
    /** A group name or gid, or null for root's group. */
    group: string | number | null;
    mode: number;
  };
  metrics: {
    /** Where GET /metrics is served; null: off. */
    listen: MetricsListen | null;
  };
  /** The scan farm's TLS listener for out-of-process scanners on other hosts (docs/farm.md); listen null: off. */
  farm: {
    listen: { host: string; port: number } | null;
    cert: string | null;
    key: string | null;
    /** Client certificates signed by this CA are admitted (null: none asked for). */
    ca: string | null;
    /** A shared secret the scanner's first line (hello) must carry (null: none asked for). */
    secretFile: string | null;
    /** Time an accepted connection has to authenticate (hello with the secret). */
    helloTimeoutMs: number;
  };
  crawl: {
    enabled: boolean;
    filesPerSecond: number;
    pauseOnBattery: boolean;
  };
  log: {
    level: LogLevel;
  };
  /** Verdicts shared by content digest between the hosts of a fleet (docs/fleet.md). */
  fleet: {
    /** The store's URL: one Redis (redis:// or rediss://, optionally with a user, password and database) or a cluster (redis+cluster://host:port,… or rediss+cluster://…: src/fleet/store-url.ts); null: off. */
    store: string | null;
    /** TLS to the store (rediss:// and rediss+cluster:// only): file paths, read at start; null: not set. */
    tls: FleetTls;
    /** The fleet key (the same on every host; never created by blessd). */
    keyFile: string;
    /** How long a lookup or a publish may take before the file is scanned locally (ms). */
    timeout: number;
    /** How long a shared verdict lives in the store (ms). */
    ttl: number;
    /** This host's name in the values it publishes. */
    host: string;
  };
}

/** fleet.tls: how a TLS store is trusted and how this host shows itself to it. */
export interface FleetTls {
  /** PEM file of the CA(s) the store's certificates are checked against (null: the system's CAs). */
  ca: string | null;
  /** PEM client certificate and its key, for a store that asks for one (tls-auth-clients); both or neither. */
  cert: string | null;
  key: string | null;
  /** The name every store node's certificate is checked against (null: the address connected to). */
  servername: string | null;
}

/** A loopback TCP address or a unix socket path. */
export type MetricsListen = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** Per-entry defaults, shared with the must-pass directory (src/policy/must-pass.ts). */
export const STACK_ENTRY_DEFAULTS = {
  control: 'required' as Control,
  maxSize: 1024 ** 3,
  onError: 'deny' as OnFailure,
  onTimeout: 'deny' as OnFailure,
  onTooLarge: 'deny' as OnTooLarge,
};
