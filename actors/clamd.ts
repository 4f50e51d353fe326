// The clamd actor: a running ClamAV daemon as a scanner.
//
// options: socket: PATH                 clamd's LocalSocket: FILDES (the open file over SCM_RIGHTS), or
//          host: H, port: N             clamd's TCPSocket: INSTREAM (the content, in chunks), or
//          hosts: [H:PORT, ...]         a farm of clamd hosts over TCP (clamd/pool.ts): INSTREAM, round-robin over
//                                       the hosts that are up, a scan moved to another host when its host fails
//          healthIntervalMs? (2000)     hosts: PING each host this often
//          healthTimeoutMs? (1000)      hosts: no PONG within this → a failure
//          downAfter?       (2)         hosts: failures in a row that mark a host down (a dropped scan: at once)
//          timeoutMs?       (15000)     per file, queueing and connecting included; keep it below pool.scanTimeout
//          connectTimeoutMs? (2000)
//          maxConcurrent?   (4)         requests in flight per worker thread
//          streamMaxLength? (25 MiB)    clamd's StreamMaxLength: larger files are `too-large` without a transfer
//          chunkSize?       (256 KiB)   INSTREAM chunk
//          versionIntervalMs? (60000)   how often the generation (clamd's VERSION) is asked again
//          idleMs?          (10000)     close an idle session (below clamd's IdleTimeout)
//          backoffMaxMs?    (1000)      longest pause between connection attempts after failures
//          fildes?          (true)      on a unix socket, pass the descriptor; false: always INSTREAM
//
// Answers: `deny` with the signature name on FOUND, `ok` on OK (clamd says nothing about safety). Errors carry
// codes the pool maps onto the entry's policy: CLAMD_TIMEOUT → onTimeout, CLAMD_TOO_LARGE → onTooLarge, every
// other (unreachable, dropped, `... ERROR`) → onError.
//
// Generation: clamd's VERSION answer (`ClamAV 1.4.6/27790/Tue Dec  1 08:22:01 2026`: engine, database version,
// database build time), asked again every versionIntervalMs and at each reload: a database update makes the
// older clamd tags stale by itself.
//
// FILDES and the gate: clamd reads the passed descriptor itself, and a read through a descriptor the daemon
// opened (after a change, by the crawl) is gated like anyone's. So clamd's pid (SO_PEERCRED of the connection,
// checked to be a process named clamd) is reported through helperPids() and exempted by the daemon; until it
// has been reported once for the current connection, this worker sends INSTREAM over the same unix socket.
import { readFileSync } from 'node:fs';
import type { ActorContext, ActorInstance, ActorModule, ScanFile, UnixSockets } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { ActorError } from './common/errors.js';
import { noOtherKeys, optionsObject, positiveInteger } from './common/options.js';
import { ClamdClient } from './clamd/client.js';
import { ClamdPool } from './clamd/pool.js';
import { parseScanReply } from './clamd/reply.js';
import { ClamdError, describeTransport, type ClamdSession, type Request, type Transport } from './clamd/session.js';

const NAME = 'clamd';
const UNREACHABLE = 'clamd:unreachable';
const KNOWN = ['socket', 'host', 'port', 'hosts', 'healthIntervalMs', 'healthTimeoutMs', 'downAfter', 'timeoutMs', 'connectTimeoutMs', 'maxConcurrent', 'streamMaxLength', 'chunkSize', 'versionIntervalMs', 'idleMs', 'backoffMaxMs', 'fildes'];

/** `host:port`, `[v6]:port`: one farm host. */
export function parseHostPort(text: string, at: string): Transport {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) throw new ActorError('ACTOR_OPTIONS', `${NAME}: ${at} must be HOST:PORT (e.g. 10.0.0.5:3310, [fd00::5]:3310), not ${JSON.stringify(text)}`);
  return { kind: 'tcp', host: m[1] ?? m[2]!, port };
}

/** `hosts:` (a farm), or undefined when the entry names one clamd. */
function farmOf(options: Record<string, unknown>): Transport[] | undefined {
  const { hosts } = options;
  if (hosts === undefined) return undefined;
  if (options['socket'] !== undefined || options['host'] !== undefined || options['port'] !== undefined) {
    throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.hosts excludes options.socket and options.host/port`);
  }
  if (!Array.isArray(hosts) || hosts.length === 0) throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.hosts must be a non-empty list of HOST:PORT`);
  const list = hosts.map((h, i) => {
    if (typeof h !== 'string') throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.hosts[${i}] must be HOST:PORT, not ${JSON.stringify(h)}`);
    return parseHostPort(h, `options.hosts[${i}]`);
  });
  const seen = new Set<string>();
  list.forEach((t, i) => {
    const where = describeTransport(t);
    if (seen.has(where)) throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.hosts[${i}]: ${where} is listed twice`);
    seen.add(where);
  });
  return list;
}

function transportOf(options: Record<string, unknown>): Transport {
  const { socket, host, port } = options;
  if (socket !== undefined) {
    if (host !== undefined || port !== undefined) throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.socket and options.host/port exclude each other`);
    if (typeof socket !== 'string' || !socket.startsWith('/')) throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.socket must be an absolute path`);
    return { kind: 'unix', path: socket };
  }
  if (typeof host !== 'string' || host === '') throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.socket (a path) or options.host and options.port are required`);
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.port must be a port number (1-65535)`);
  return { kind: 'tcp', host, port };
}

function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The last VERSION each clamd answered in this worker, kept across instances: the daemon loads the actor afresh at
 * every describe (reload, generation check), and a clamd that is restarting just then must not turn every tag
 * stale by answering nothing.
 */
const lastVersion = new Map<string, string>();

/**
 * A farm host's change of state, as one JSON line on stderr in the daemon's log format (pino's level numbers):
 * actors run in pool workers, which have no logger of the daemon's; their stderr is the daemon's.
 */
function logLine(level: 'warn' | 'info', msg: string, fields: Record<string, unknown>): void {
  process.stderr.write(JSON.stringify({ level: level === 'warn' ? 40 : 30, time: Date.now(), pid: process.pid, actor: NAME, ...fields, msg }) + '\n');
}

const clamd: ActorModule = {
  manifest: { api: 1, name: NAME, version: '1.0.0' },

  async init(raw, context?: ActorContext): Promise<ActorInstance> {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, KNOWN);
    const farm = farmOf(options);
    const transport = farm?.[0] ?? transportOf(options);
    const int = (key: string, fallback: number) => positiveInteger(NAME, options, key, fallback);
    const timeoutMs = int('timeoutMs', 15_000);
    const connectTimeoutMs = int('connectTimeoutMs', 2_000);
    const streamMaxLength = int('streamMaxLength', 25 * 1024 * 1024);
    const chunkSize = Math.min(int('chunkSize', 256 * 1024), streamMaxLength);
    const versionIntervalMs = int('versionIntervalMs', 60_000);
    if (options['fildes'] !== undefined && typeof options['fildes'] !== 'boolean') throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.fildes must be true or false`);
    // Descriptor passing through what the daemon lends (context.unix); initialised by hand without it, INSTREAM.
    const unix: UnixSockets | undefined = context?.unix;
    const fildes = transport.kind === 'unix' && options['fildes'] !== false && unix !== undefined;
    const clientOptions = {
      timeoutMs,
      connectTimeoutMs,
      maxConcurrent: int('maxConcurrent', 4),
      idleMs: int('idleMs', 10_000),
      backoffMaxMs: int('backoffMaxMs', 1_000),
    };
    const scanner = context?.name ?? NAME;
    for (const key of ['healthIntervalMs', 'healthTimeoutMs', 'downAfter']) {
      if (!farm && options[key] !== undefined) throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.${key} applies to options.hosts (a farm) only`);
    }
    // One clamd (socket or host/port) or a farm (hosts): the same requests, the farm picks the host per request.
    const client = farm ? undefined : new ClamdClient({ ...clientOptions, transport });
    const pool = farm
      ? new ClamdPool(farm, {
          client: clientOptions,
          healthIntervalMs: int('healthIntervalMs', 2_000),
          healthTimeoutMs: int('healthTimeoutMs', 1_000),
          downAfter: int('downAfter', 2),
          log: (level, msg, fields) => logLine(level, msg, { scanner, ...fields }),
        })
      : undefined;
    const where = pool ? pool.where : describeTransport(transport);
    const run = async (make: (s: ClamdSession) => Request, ms?: number): Promise<string> => (pool ? (await pool.run(make, ms)).reply : client!.run(make, ms));

    /** clamd's pid behind a session, once per session; undefined if the listener is not clamd (socket activation). */
    const peers = new WeakMap<ClamdSession, number | null>();
    const peerPid = (s: ClamdSession): number | undefined => {
      let pid = peers.get(s);
      if (pid === undefined) {
        try {
          const cred = unix!.peerCred(s.fd);
          pid = cred.pid > 1 && processName(cred.pid) === 'clamd' ? cred.pid : null;
        } catch {
          pid = null;
        }
        peers.set(s, pid);
      }
      return pid ?? undefined;
    };
    /** Pids the daemon has been told about (helperPids): only those may read our descriptors. */
    const reported = new Set<number>();

    const askVersion = async (): Promise<string> => {
      const version = pool ? await pool.version(connectTimeoutMs + timeoutMs) : (await run((s) => s.version(), connectTimeoutMs + timeoutMs)).trim();
      if (version === undefined) throw new ClamdError('CLAMD_UNAVAILABLE', `clamd farm ${where}: no host answered VERSION`);
      if (!/^ClamAV /.test(version)) throw new ClamdError('CLAMD_PROTOCOL', `clamd at ${where}: VERSION answered ${JSON.stringify(version.slice(0, 100))}`);
      lastVersion.set(where, `clamd:${version}`);
      return `clamd:${version}`;
    };

    const warnings: string[] = [];
    let generation = UNREACHABLE;
    try {
      generation = await askVersion();
    } catch (err) {
      // Not fatal: clamd may start after blessd, or be restarting. Scans fail (onError) until it answers; the
      // generation stays what clamd last said (or `clamd:unreachable`) and follows once it answers.
      generation = lastVersion.get(where) ?? UNREACHABLE;
      warnings.push(`${scanner}: ${(err as Error).message}; scans fail (onError) until clamd answers`);
    }

    const instance: ActorInstance = {
      generation,
      warnings,
      generationRefreshMs: versionIntervalMs,

      async currentGeneration() {
        try {
          instance.generation = await askVersion();
        } catch {
          // clamd restarting: keep what we knew rather than make every tag stale for a blip.
        }
        return instance.generation;
      },

      helperPids() {
        const s = fildes ? client?.current : undefined;
        const pid = s && peerPid(s);
        if (!pid) return [];
        reported.add(pid);
        return [pid];
      },

      async scan(file: ScanFile): Promise<Answer> {
        const reply = await run((s) => {
          const pid = fildes ? peerPid(s) : undefined;
          if (pid !== undefined && reported.has(pid)) return s.fildes(file.fd, unix!);
          if (file.size > streamMaxLength) {
            throw new ClamdError('CLAMD_TOO_LARGE', `${file.path} is ${file.size} bytes, over clamd's StreamMaxLength (${streamMaxLength})`);
          }
          return s.instream(file.chunks(chunkSize));
        });
        const r = parseScanReply(reply);
        switch (r.kind) {
          case 'found':
            return { answer: 'deny', reason: r.signature };
          case 'clean':
            return { answer: 'ok' };
          case 'too-large':
            throw new ClamdError('CLAMD_TOO_LARGE', `clamd at ${where}: ${r.message} (${file.path}, ${file.size} bytes)`);
          case 'error':
            throw new ClamdError('CLAMD_ERROR', `clamd at ${where}: ${r.message} (${file.path})`);
        }
      },

      async close() {
        client?.close();
        pool?.close();
      },
    };
    return instance;
  },
};

export default clamd;
