// The clamd actor: a running ClamAV daemon as a scanner.
//
// options: socket: PATH                 clamd's LocalSocket: FILDES (the open file over SCM_RIGHTS), or
//          host: H, port: N             clamd's TCPSocket: INSTREAM (the content, in chunks)
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
import { parseScanReply } from './clamd/reply.js';
import { ClamdError, type ClamdSession, type Transport } from './clamd/session.js';

const NAME = 'clamd';
const UNREACHABLE = 'clamd:unreachable';
const KNOWN = ['socket', 'host', 'port', 'timeoutMs', 'connectTimeoutMs', 'maxConcurrent', 'streamMaxLength', 'chunkSize', 'versionIntervalMs', 'idleMs', 'backoffMaxMs', 'fildes'];

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

const clamd: ActorModule = {
  manifest: { api: 1, name: NAME, version: '1.0.0' },

  async init(raw, context?: ActorContext): Promise<ActorInstance> {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, KNOWN);
    const transport = transportOf(options);
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
    const client = new ClamdClient({
      transport,
      timeoutMs,
      connectTimeoutMs,
      maxConcurrent: int('maxConcurrent', 4),
      idleMs: int('idleMs', 10_000),
      backoffMaxMs: int('backoffMaxMs', 1_000),
    });
    const scanner = context?.name ?? NAME;

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
      const reply = await client.run((s) => s.version(), connectTimeoutMs + timeoutMs);
      const version = reply.trim();
      if (!/^ClamAV /.test(version)) throw new ClamdError('CLAMD_PROTOCOL', `clamd at ${client.where}: VERSION answered ${JSON.stringify(version.slice(0, 100))}`);
      lastVersion.set(client.where, `clamd:${version}`);
      return `clamd:${version}`;
    };

    const warnings: string[] = [];
    let generation = UNREACHABLE;
    try {
      generation = await askVersion();
    } catch (err) {
      // Not fatal: clamd may start after blessd, or be restarting. Scans fail (onError) until it answers; the
      // generation stays what clamd last said (or `clamd:unreachable`) and follows once it answers.
      generation = lastVersion.get(client.where) ?? UNREACHABLE;
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
        const s = fildes ? client.current : undefined;
        const pid = s && peerPid(s);
        if (!pid) return [];
        reported.add(pid);
        return [pid];
      },

      async scan(file: ScanFile): Promise<Answer> {
        const reply = await client.run((s) => {
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
            throw new ClamdError('CLAMD_TOO_LARGE', `clamd at ${client.where}: ${r.message} (${file.path}, ${file.size} bytes)`);
          case 'error':
            throw new ClamdError('CLAMD_ERROR', `clamd at ${client.where}: ${r.message} (${file.path})`);
        }
      },

      async close() {
        client.close();
      },
    };
    return instance;
  },
};

export default clamd;
