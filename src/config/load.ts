// Loading config.yaml: YAML with positions -> a fully defaulted, checked, frozen Config.
// Every problem is collected (with file:line:col and key path) and thrown as one ConfigError. Unknown keys are
// errors: a typo in a security setting must not silently fall back to the default.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { LineCounter, parseDocument, type Node } from 'yaml';
import { parseStoreUrl } from '../fleet/store-url.js';
import { ConfigError } from './errors.js';
import { globToRegExp } from './glob.js';
import { DEADLINE_MAX_MS, TIMER_MAX_MS, fdBudgetProblem } from './limits.js';
import { Reader, closest, type Slot } from './reader.js';
import {
  builtinActors,
  CONTROLS,
  DENY_ERRNOS,
  GUARD_KINDS,
  LOG_LEVELS,
  MUST_PASS_POSITIONS,
  ON_FAILURE,
  ON_TOO_LARGE,
  SCANNER_NAME,
  STACK_ENTRY_DEFAULTS,
  WAIT_MODES,
  type Config,
  type Guard,
  type MetricsListen,
  type StackEntry,
} from './types.js';

type Section = Map<string, Slot> | undefined;

/** Config files larger than this are refused unparsed. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
const MAX_EXEMPT_PATHS = 1024;

const TIMER_LIMITS = {
  timer: { ms: TIMER_MAX_MS, why: 'node timers cannot wait longer (they would fire after 1ms)' },
  deadline: { ms: DEADLINE_MAX_MS, why: 'the native gate holds an opener at most an hour' },
};

/** Read and parse a config file. Synchronous: it runs once, before the gate exists. */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    // Bounded before reading: a config of megabytes is a mistake, and parsing it with positions costs seconds and
    // gigabytes (1M globs: 25 s, 1.6 GB). A FIFO or device is refused without being opened.
    const st = statSync(path);
    if (!st.isFile()) throw new ConfigError(path, [`${path}: the configuration must be a regular file`]);
    if (st.size > MAX_CONFIG_BYTES) throw new ConfigError(path, [tooLarge(path, st.size)]);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new ConfigError(path, [`${path}: cannot read the configuration (${e.code ?? e.message})`]);
  }
  return parseConfig(text, path);
}

function tooLarge(path: string, bytes: number): string {
  return `${path}: the configuration is ${bytes} bytes; at most ${MAX_CONFIG_BYTES} (1 MiB) are read — long lists belong in the scanner's own files`;
}

/** Parse config text; `path` names the file in messages and anchors relative paths. */
export function parseConfig(text: string, path: string): Config {
  if (text.length > MAX_CONFIG_BYTES / 4 && Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw new ConfigError(path, [tooLarge(path, Buffer.byteLength(text))]);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r = new Reader(path, dirname(resolve(path)), doc, lines);
  // Syntax errors make the tree unreliable: report them alone. Warnings (unknown tags...) count as errors too.
  for (const e of [...doc.errors, ...doc.warnings]) r.problemAt(e.pos[0], `YAML: ${firstLine(e.message)}`);
  if (doc.errors.length > 0) throw new ConfigError(path, r.issues());

  const rootSlot: Slot = { path: '', key: null, value: (doc.contents as Node | null) ?? null };
  const top = r.map(rootSlot, TOP_KEYS) ?? new Map<string, Slot>();
  const stateDir = r.path(top.get('stateDir'), '/var/lib/blessd');
  const config: Config = {
    file: resolve(path),
    stateDir,
    tags: readTags(r, top.get('tags'), stateDir),
    guards: readGuards(r, top.get('guards'), rootSlot),
    gate: readGate(r, top.get('gate')),
    exempt: readExempt(r, top.get('exempt')),
    pool: readPool(r, top.get('pool')),
    stack: readStack(r, top.get('stack'), rootSlot),
    mustPass: readMustPassSection(r, top.get('mustPass')),
    socket: readSocket(r, top.get('socket')),
    metrics: readMetrics(r, top.get('metrics')),
    farm: readFarm(r, top.get('farm')),
    crawl: readCrawl(r, top.get('crawl')),
    log: { level: r.oneOf(section(r, top.get('log'), ['level'])?.get('level'), LOG_LEVELS, 'info') },
    fleet: readFleet(r, top.get('fleet'), stateDir),
  };
  if (r.count > 0) throw new ConfigError(path, r.issues());
  return deepFreeze(config);
}

const TOP_KEYS = ['stateDir', 'tags', 'guards', 'gate', 'exempt', 'pool', 'stack', 'mustPass', 'socket', 'metrics', 'farm', 'crawl', 'log', 'fleet'];
const ENTRY_KEYS = ['actor', 'name', 'control', 'options', 'maxSize', 'onError', 'onTimeout', 'onTooLarge'];

function section(r: Reader, slot: Slot | undefined, keys: readonly string[]): Section {
  return slot ? r.map(slot, keys) : new Map();
}

function readTags(r: Reader, slot: Slot | undefined, stateDir: string): Config['tags'] {
  const m = section(r, slot, ['namespace', 'keyFile', 'stamp', 'lease']);
  return {
    namespace: r.oneOf(m?.get('namespace'), ['trusted', 'user'] as const, 'trusted'),
    // The key follows stateDir unless placed elsewhere on purpose.
    keyFile: r.path(m?.get('keyFile'), join(stateDir, 'tag.key')),
    stamp: r.oneOf(m?.get('stamp'), ['ctime', 'mtime', 'content'] as const, 'ctime'),
    lease: r.duration(m?.get('lease'), 5 * 60_000, 1, TIMER_LIMITS.timer),
  };
}

function readGuards(r: Reader, slot: Slot | undefined, root: Slot): Guard[] {
  const items = r.list(slot);
  if (!slot) r.problem(root, 'guards', 'required: at least one guard (a directory, mount or filesystem to gate)');
  else if (items?.length === 0) r.problem(slot, slot.path, 'needs at least one guard');
  const guards: Guard[] = [];
  const seen = new Map<string, string>();
  for (const item of items ?? []) {
    const m = r.map(item, ['path', 'kind', 'wait', 'create', 'demo']);
    if (!m) continue;
    const pathSlot = m.get('path');
    if (!pathSlot) r.problem(item, `${item.path}.path`, 'required');
    const guard: Guard = {
      path: r.path(pathSlot, ''),
      kind: r.oneOf(m.get('kind'), GUARD_KINDS, 'tree'),
      wait: r.oneOf(m.get('wait'), WAIT_MODES, 'read'),
      create: r.bool(m.get('create'), false),
      demo: r.bool(m.get('demo'), false),
      origin: pathSlot ? r.where(pathSlot) : r.where(item),
    };
    if (!pathSlot || !guard.path) continue; // missing or empty: already reported
    // resolve() always yields an absolute path; the check stays as a guard against future path sources.
    if (!isAbsolute(guard.path)) r.problem(pathSlot, pathSlot.path, `must resolve to an absolute path (got ${guard.path})`);
    const earlier = seen.get(guard.path);
    if (earlier) r.problem(pathSlot, pathSlot.path, `${guard.path} is already guarded at ${earlier}`);
    seen.set(guard.path, r.where(pathSlot));
    guards.push(guard);
  }
  return guards;
}

function readGate(r: Reader, slot: Slot | undefined): Config['gate'] {
  const m = section(r, slot, ['deadline', 'accessDeadline', 'onDeadline', 'maxPending', 'maxPendingPerUid', 'denyErrno', 'retryErrno', 'whileWriting', 'audit', 'sharedMapSweep', 'settleWalk']);
  const pendingSlot = m?.get('maxPending');
  let maxPending = r.int(pendingSlot, 4096, 1);
  // Read from this process, not assumed: `blessd run` under a lower ulimit would fail reads with EMFILE.
  const fds = fdBudgetProblem(maxPending);
  if (fds) {
    r.problem(pendingSlot ?? slot, pendingSlot?.path ?? 'gate.maxPending', pendingSlot ? fds : `(default ${maxPending}) ${fds}`);
    maxPending = 4096;
  }
  const shareSlot = m?.get('maxPendingPerUid');
  let maxPendingPerUid = r.int(shareSlot, Math.max(1, Math.floor(maxPending / 4)), 1);
  if (shareSlot && maxPendingPerUid > maxPending) {
    r.problem(shareSlot, shareSlot.path, `must not exceed gate.maxPending (${maxPending}): it is one uid's share of it (got ${maxPendingPerUid})`);
    maxPendingPerUid = maxPending;
  }
  const deadline = r.duration(m?.get('deadline'), 30_000, 1, TIMER_LIMITS.deadline);
  const accessSlot = m?.get('accessDeadline');
  let accessDeadline = r.duration(accessSlot, deadline, 1);
  if (accessSlot && accessDeadline > 3_600_000) {
    r.problem(accessSlot, accessSlot.path, `must be at most 1h (the native gate's limit; got ${accessDeadline} ms)`);
    accessDeadline = deadline;
  }
  return {
    deadline,
    accessDeadline,
    onDeadline: r.oneOf(m?.get('onDeadline'), ['retry', 'deny', 'allow'] as const, 'retry'),
    maxPending,
    maxPendingPerUid,
    denyErrno: r.oneOf(m?.get('denyErrno'), DENY_ERRNOS, 'EPERM'),
    retryErrno: r.oneOf(m?.get('retryErrno'), DENY_ERRNOS, 'EAGAIN'),
    whileWriting: r.oneOf(m?.get('whileWriting'), ['wait', 'allow'] as const, 'wait'),
    audit: r.bool(m?.get('audit'), false),
    sharedMapSweep: r.duration(m?.get('sharedMapSweep'), 2000, 0, TIMER_LIMITS.timer),
    settleWalk: readSettleWalk(r, m?.get('settleWalk')),
  };
}

function readSettleWalk(r: Reader, slot: Slot | undefined): Config['gate']['settleWalk'] {
  const m = section(r, slot, ['enabled', 'filesPerSecond']);
  return {
    enabled: r.bool(m?.get('enabled'), true),
    filesPerSecond: r.int(m?.get('filesPerSecond'), 5000, 1, 10_000_000),
  };
}

function readExempt(r: Reader, slot: Slot | undefined): Config['exempt'] {
  const m = section(r, slot, ['uids', 'executables', 'paths']);
  const uids = (r.list(m?.get('uids')) ?? []).map((s) => r.int(s, -1, 0, 0xffff_fffe)).filter((u) => u >= 0);
  const executables: string[] = [];
  for (const s of r.list(m?.get('executables')) ?? []) {
    const exe = r.string(s, '');
    // Relative names would resolve against the config directory: never what someone exempting a program means.
    if (exe && !isAbsolute(exe)) r.problem(s, s.path, `must be an absolute path (got ${JSON.stringify(exe)})`);
    else if (exe) executables.push(exe);
  }
  const paths: string[] = [];
  const matchers: RegExp[] = [];
  const pathSlots = r.list(m?.get('paths')) ?? [];
  // Each forwarded event is matched against every glob: the list must stay short.
  if (pathSlots.length > MAX_EXEMPT_PATHS) r.problem(m?.get('paths'), 'exempt.paths', `${pathSlots.length} globs; at most ${MAX_EXEMPT_PATHS} (each forwarded event is matched against all)`);
  for (const s of pathSlots.slice(0, MAX_EXEMPT_PATHS)) {
    const glob = r.string(s, '');
    if (glob && !glob.startsWith('/') && !glob.startsWith('**')) {
      r.problem(s, s.path, `a glob must start with "/" or "**" (got ${JSON.stringify(glob)})`);
    } else if (glob) {
      try {
        matchers.push(globToRegExp(glob));
        paths.push(glob);
      } catch (err) {
        r.problem(s, s.path, (err as Error).message);
      }
    }
  }
  return { uids, executables, paths, pathMatchers: matchers };
}

function readPool(r: Reader, slot: Slot | undefined): Config['pool'] {
  const m = section(r, slot, ['threads', 'scanTimeout', 'rescanDebounce', 'rescan', 'queuePerUid']);
  return {
    threads: r.int(m?.get('threads'), 2, 1, 1024),
    scanTimeout: r.duration(m?.get('scanTimeout'), 20_000, 1, TIMER_LIMITS.timer),
    rescanDebounce: r.duration(m?.get('rescanDebounce'), 200, 0, TIMER_LIMITS.timer),
    rescan: r.oneOf(m?.get('rescan'), ['onClose', 'onRead'] as const, 'onClose'),
    queuePerUid: r.int(m?.get('queuePerUid'), 1024, 1, 1_000_000),
  };
}

function readStack(r: Reader, slot: Slot | undefined, root: Slot): StackEntry[] {
  const items = r.list(slot);
  if (!slot) r.problem(root, 'stack', 'required: at least one entry (end it with `actor: default`)');
  else if (items?.length === 0) r.problem(slot, slot.path, 'needs at least one entry (end it with `actor: default`)');
  const stack: StackEntry[] = [];
  const names = new Map<string, string>();
  for (const item of items ?? []) {
    const entry = readStackEntry(r, item);
    if (!entry) continue;
    const earlier = names.get(entry.name);
    if (earlier) {
      r.problem(entry.nameSlot, `${item.path}.name`, `duplicate scanner name "${entry.name}" (first used at ${earlier}); give one a different name`);
    } else names.set(entry.name, entry.origin);
    const { nameSlot: _, ...clean } = entry;
    stack.push(clean);
  }
  return stack;
}

function readStackEntry(r: Reader, item: Slot): (StackEntry & { nameSlot: Slot }) | undefined {
  const m = r.map(item, ENTRY_KEYS);
  if (!m) return undefined;
  const actorSlot = m.get('actor');
  const BUILTIN_ACTORS = builtinActors(); // read per entry: a module dropped into actors/ counts at the next load
  if (!actorSlot) r.problem(item, `${item.path}.actor`, `required: a built-in (${BUILTIN_ACTORS.join(', ')}) or a path to a .js module`);
  const written = r.string(actorSlot, '');
  const builtin = BUILTIN_ACTORS.includes(written);
  let actor = written;
  let defaultName = written;
  if (written && !builtin) {
    if (/\.m?js$/.test(written)) {
      actor = isAbsolute(written) ? written : resolve(r.baseDir, written);
      defaultName = basename(written, extname(written));
      if (!existsSync(actor)) r.problem(actorSlot, actorSlot!.path, `module not found: ${actor}`);
    } else {
      const hint = closest(written, BUILTIN_ACTORS);
      r.problem(actorSlot, actorSlot!.path,
        `must be a built-in (${BUILTIN_ACTORS.join(', ')}) or a path to a .js module (got ${JSON.stringify(written)})${hint ? `; did you mean "${hint}"?` : ''}`);
    }
  }
  const nameSlot = m.get('name') ?? actorSlot ?? item;
  const name = r.string(m.get('name'), defaultName);
  if (name && !SCANNER_NAME.test(name)) {
    r.problem(nameSlot, `${item.path}.name`,
      `must match [a-z0-9][a-z0-9_-]{0,63} (got ${JSON.stringify(name)})${m.get('name') ? '' : '; set name: explicitly'}`);
  }
  const options = r.freeform(m.get('options'));
  return {
    actor,
    builtin,
    name,
    control: r.oneOf(m.get('control'), CONTROLS, STACK_ENTRY_DEFAULTS.control),
    options: builtin ? resolveBuiltinPaths(actor, options, r.baseDir) : options,
    maxSize: r.size(m.get('maxSize'), STACK_ENTRY_DEFAULTS.maxSize),
    onError: r.oneOf(m.get('onError'), ON_FAILURE, STACK_ENTRY_DEFAULTS.onError),
    onTimeout: r.oneOf(m.get('onTimeout'), ON_FAILURE, STACK_ENTRY_DEFAULTS.onTimeout),
    onTooLarge: r.oneOf(m.get('onTooLarge'), ON_TOO_LARGE, STACK_ENTRY_DEFAULTS.onTooLarge),
    baseDir: r.baseDir,
    origin: r.where(item.value ?? item),
    nameSlot,
  };
}

/**
 * Actors get their options as written and do not know where config.yaml lives, so the documented path options
 * of the built-ins are made absolute here (signature: databases, exec: program, allowlist: file, clamd: socket, yara: rules, integrity: baseline).
 * Other relative options can be resolved by the actor against entry.baseDir.
 */
function resolveBuiltinPaths(actor: string, options: Record<string, unknown>, baseDir: string): Record<string, unknown> {
  const keys: Record<string, string[]> = { signature: ['databases'], exec: ['program'], allowlist: ['file'], clamd: ['socket'], yara: ['rules'], integrity: ['baseline'] };
  const out = { ...options };
  const abs = (v: unknown): unknown => (typeof v === 'string' && v !== '' && !isAbsolute(v) ? resolve(baseDir, v) : v);
  for (const key of keys[actor] ?? []) {
    const v = out[key];
    if (Array.isArray(v)) out[key] = v.map(abs);
    else if (v !== undefined) out[key] = abs(v);
  }
  return out;
}

function readMustPassSection(r: Reader, slot: Slot | undefined): Config['mustPass'] {
  const m = section(r, slot, ['dir', 'control', 'position']);
  const dirSlot = m?.get('dir');
  const dir = !dirSlot || r.isNull(dirSlot) ? null : r.path(dirSlot, '');
  return {
    dir,
    control: r.oneOf(m?.get('control'), CONTROLS, 'required'),
    position: r.oneOf(m?.get('position'), MUST_PASS_POSITIONS, 'beforeDefault'),
  };
}

function readSocket(r: Reader, slot: Slot | undefined): Config['socket'] {
  const m = section(r, slot, ['path', 'group', 'mode']);
  const groupSlot = m?.get('group');
  let group: string | number | null = null;
  if (groupSlot && !r.isNull(groupSlot)) {
    const v = r.scalar(groupSlot, 'a group name or gid');
    if ((typeof v === 'string' && v !== '') || (typeof v === 'number' && Number.isInteger(v) && v >= 0)) group = v;
    else if (v !== undefined) r.problem(groupSlot, groupSlot.path, `must be a group name or gid, or null (got ${JSON.stringify(v)})`);
  }
  return {
    path: r.path(m?.get('path'), '/run/blessd.sock'),
    group,
    mode: r.mode(m?.get('mode'), 0o660),
  };
}

function readMetrics(r: Reader, slot: Slot | undefined): Config['metrics'] {
  const m = section(r, slot, ['listen']);
  const at = m?.get('listen');
  if (!at || r.isNull(at)) return { listen: null };
  const v = r.scalar(at, 'HOST:PORT on loopback, or a unix socket path');
  if (typeof v !== 'string' && typeof v !== 'number') return { listen: null };
  const listen = parseMetricsListen(String(v));
  if (typeof listen === 'string') {
    r.problem(at, at.path, listen);
    return { listen: null };
  }
  return { listen };
}

/** "127.0.0.1:9464", "[::1]:9464", "localhost:9464" or "/run/blessd/metrics.sock". */
export function parseMetricsListen(v: string): MetricsListen | string {
  if (v.startsWith('/')) return { kind: 'unix', path: v };
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(v);
  if (!m) return `must be HOST:PORT (e.g. 127.0.0.1:9464) or an absolute unix socket path (got ${JSON.stringify(v)})`;
  const host = (m[1] ?? m[2])!;
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return `port must be 0..65535 (got ${m[3]})`;
  // Metrics name guarded paths and load: they stay on this machine (a scraper elsewhere goes through a proxy).
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (!loopback) return `host must be a loopback address (127.0.0.0/8, ::1 or localhost), got ${host}`;
  return { kind: 'tcp', host, port };
}

function readFleet(r: Reader, slot: Slot | undefined, stateDir: string): Config['fleet'] {
  const m = section(r, slot, ['store', 'keyFile', 'timeout', 'ttl', 'host', 'tls']);
  const at = m?.get('store');
  let store: string | null = null;
  let tlsStore = false;
  if (at && !r.isNull(at)) {
    const v = r.string(at, '');
    const t = parseStoreUrl(v);
    if ('problem' in t) r.problem(at, at.path, t.problem);
    else {
      store = v;
      tlsStore = t.tls;
    }
  }
  const tlsAt = m?.get('tls');
  const t: Map<string, Slot> = (tlsAt && !r.isNull(tlsAt) ? section(r, tlsAt, ['ca', 'cert', 'key', 'servername']) : undefined) ?? new Map();
  const optionalPath = (key: string) => {
    const s = t.get(key);
    return !s || r.isNull(s) ? null : r.path(s, '') || null;
  };
  const servernameAt = t.get('servername');
  const tls: Config['fleet']['tls'] = {
    ca: optionalPath('ca'),
    cert: optionalPath('cert'),
    key: optionalPath('key'),
    servername: !servernameAt || r.isNull(servernameAt) ? null : r.string(servernameAt, '') || null,
  };
  const tlsSet = Object.values(tls).some((v) => v !== null);
  // A CA or a client certificate given for a plain-text store would be ignored: the admin meant TLS.
  if (tlsSet && store !== null && !tlsStore) r.problem(tlsAt, 'fleet.tls', `is set but fleet.store is not a TLS URL: use rediss://… or rediss+cluster://… (got ${store.slice(0, store.indexOf(':'))}://)`);
  if ((tls.cert === null) !== (tls.key === null)) r.problem(tlsAt, tls.cert === null ? 'fleet.tls.cert' : 'fleet.tls.key', `required with fleet.tls.${tls.cert === null ? 'key' : 'cert'} (a client certificate needs its key)`);
  const host = r.string(m?.get('host'), hostname());
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(host)) r.problem(m?.get('host'), 'fleet.host', `must be 1 to 64 of A-Z a-z 0-9 . _ - (got ${JSON.stringify(host)})`);
  return {
    store,
    tls,
    keyFile: r.path(m?.get('keyFile'), join(stateDir, 'fleet.key')),
    // Short: a lookup is one round trip on a LAN; past this the file is scanned locally.
    timeout: r.duration(m?.get('timeout'), 100, 1, { ms: 10_000, why: 'the store must not hold a permission event for long' }),
    ttl: r.duration(m?.get('ttl'), 7 * 24 * 3600_000, 1000, { ms: 365 * 24 * 3600_000, why: 'a year' }),
    host,
  };
}

/** Why `v` is not a store URL this version speaks (one Redis or a cluster: src/fleet/store-url.ts), or undefined. */
export function storeUrlProblem(v: string): string | undefined {
  const t = parseStoreUrl(v);
  return 'problem' in t ? t.problem : undefined;
}

/** farm: the TLS listener for out-of-process scanners elsewhere. It never runs unauthenticated. */
function readFarm(r: Reader, slot: Slot | undefined): Config['farm'] {
  const m = section(r, slot, ['listen', 'cert', 'key', 'ca', 'secretFile', 'helloTimeout']);
  const optionalPath = (key: string) => {
    const at = m?.get(key);
    return !at || r.isNull(at) ? null : r.path(at, '') || null;
  };
  const farm: Config['farm'] = {
    listen: null,
    cert: optionalPath('cert'),
    key: optionalPath('key'),
    ca: optionalPath('ca'),
    secretFile: optionalPath('secretFile'),
    helloTimeoutMs: r.duration(m?.get('helloTimeout'), 5_000, 1, TIMER_LIMITS.timer),
  };
  const at = m?.get('listen');
  if (!at || r.isNull(at)) return farm;
  const v = r.scalar(at, 'HOST:PORT');
  const hp = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(String(v ?? ''));
  if (!hp || Number(hp[3]) > 65535) {
    r.problem(at, at.path, `must be HOST:PORT (e.g. 0.0.0.0:7350, [::]:7350), got ${JSON.stringify(v)}`);
    return farm;
  }
  farm.listen = { host: (hp[1] ?? hp[2])!, port: Number(hp[3]) };
  // Scanners are handed file content: a listener without TLS or without a way to tell scanners apart is refused.
  for (const key of ['cert', 'key'] as const) if (!farm[key]) r.problem(slot!.value, `farm.${key}`, 'required with farm.listen (the listener speaks TLS only)');
  if (!farm.ca && !farm.secretFile) r.problem(slot!.value, 'farm', 'farm.listen needs farm.ca (client certificates) or farm.secretFile (a shared secret), or both: no unauthenticated scanner is admitted');
  return farm;
}

function readCrawl(r: Reader, slot: Slot | undefined): Config['crawl'] {
  const m = section(r, slot, ['enabled', 'filesPerSecond', 'pauseOnBattery']);
  return {
    enabled: r.bool(m?.get('enabled'), false),
    filesPerSecond: r.number(m?.get('filesPerSecond'), 100, 0),
    pauseOnBattery: r.bool(m?.get('pauseOnBattery'), true),
  };
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof RegExp)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
