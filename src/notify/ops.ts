// The operations of the control socket, one small handler each. A handler returns the reply's fields (or nothing
// for `answer`, which only replies on error) and throws ProtocolError for anything the client got wrong.
// Rights: `root: true` ops need the peer's uid 0; every other op is open to anyone the socket file lets connect
// (root and the socket's group).
import { constants, open } from 'node:fs';
import { close } from 'node:fs';
import { hostname } from 'node:os';
import { promisify } from 'node:util';
import { bumpGeneration } from '../tags/generation.js';
import { isScannerName } from '../tags/names.js';
import type { Connection } from './connection.js';
import type { DaemonControl } from './daemon-control.js';
import type { Logger } from '../daemon/logger.js';
import { boolArg, intArg, LIMITS, PROTOCOL_VERSION, ProtocolError, stringArg, SUPPORTED_VERSIONS, type Request, type RequestId } from './protocol.js';
import type { TreeScanner } from './tree-scan.js';
import { viewerOf } from './visibility.js';

const openFd = promisify(open);
const closeFd = promisify(close);

export interface ServerState {
  control: DaemonControl;
  scanner: TreeScanner;
  connections: ReadonlySet<Connection>;
  startedAt: number;
  socketPath: string;
  /** Re-read the config file and apply it (blessd run); absent when the daemon was started from an object. */
  /** Resolves with the start-only keys the new config changes (kept until a restart). */
  reload?: () => Promise<{ restartNeeded: string[] }>;
  counters: { requests: number; badLines: number; noticesOut: number; refused: number; /** Lost by subscribers since gone. */ noticesLostGone: number };
}

export interface OpContext {
  conn: Connection;
  req: Request;
  state: ServerState;
}

export interface Op {
  root: boolean;
  run(ctx: OpContext): Promise<object | void> | object | void;
}

/**
 * Runs `op` for one request and replies with its result, or with its error: a ProtocolError as itself, anything
 * else logged (with `where`, the transport) and answered FAILED. The one dispatch of the control socket and the farm.
 */
export function runOp(op: Op, ctx: OpContext, id: RequestId, log: Logger, where: string): void {
  const fail = (err: unknown) => {
    if (err instanceof ProtocolError) return ctx.conn.error(id, err.code, err.message);
    log.error({ err, op: ctx.req.op, client: ctx.conn.label }, `${where}: an op failed`);
    ctx.conn.error(id, 'FAILED', `${ctx.req.op}: ${(err as Error)?.message ?? String(err)}`);
  };
  let result;
  try {
    result = op.run(ctx);
  } catch (err) {
    return fail(err);
  }
  Promise.resolve(result).then((r) => {
    if (r !== undefined) ctx.conn.reply(id, r);
  }, fail);
}

export const OPS: Record<string, Op> = {
  hello: {
    root: false,
    run: ({ conn }) => ({
      server: 'blessd',
      version: PROTOCOL_VERSION,
      versions: SUPPORTED_VERSIONS,
      pid: process.pid,
      host: hostname(),
      peer: conn.peer,
      ops: Object.keys(OPS).sort(),
      limits: { maxLine: LIMITS.maxLine, subscriberQueue: LIMITS.subscriberQueue },
    }),
  },

  status: { root: false, run: ({ state }) => status(state) },

  stats: {
    root: false,
    run: ({ state }) => ({ stats: { ...state.control.stats(), pool: state.control.pool(), notify: notifyStats(state) } }),
  },

  // Paths and executables of every user: root only (a member of socket.group sees counters, not who).
  costs: {
    root: true,
    run: ({ req, state }) => {
      const by = stringArg(req, 'by')!;
      if (by !== 'process' && by !== 'path' && by !== 'uid') throw new ProtocolError('BAD_REQUEST', 'costs: "by" must be process, path or uid');
      const sort = stringArg(req, 'sort', { optional: true }) ?? 'scanMs';
      if (!['judged', 'scans', 'scanMs', 'waitedMs', 'waits', 'denied'].includes(sort)) throw new ProtocolError('BAD_REQUEST', 'costs: "sort" must be judged, scans, scanMs, waitedMs, waits or denied');
      return { by, rows: state.control.costs(by, intArg(req, 'top', 10, 1, 1000), sort as 'scanMs') };
    },
  },

  subscribe: {
    root: false,
    run: ({ conn, req, state }) => {
      conn.subscription = { verdicts: boolArg(req, 'verdicts', false) };
      // A non-root subscriber hears only of files its uid could find (visibility.ts): its groups as of now.
      conn.viewer = conn.peer.uid === 0 ? null : viewerOf(conn.peer);
      state.control.hearingChanged?.();
      return { subscribed: { dirty: true, verdicts: conn.subscription.verdicts } };
    },
  },

  unsubscribe: {
    root: false,
    run: ({ conn, state }) => {
      conn.subscription = null;
      state.control.hearingChanged?.();
      return {};
    },
  },

  register: {
    root: true,
    run: async ({ conn, req, state }) => {
      const scanner = stringArg(req, 'scanner')!;
      if (!isScannerName(scanner)) throw new ProtocolError('BAD_REQUEST', `register: ${JSON.stringify(scanner)} is not a scanner name ([a-z0-9][a-z0-9_-]{0,63})`);
      const mustPass = boolArg(req, 'mustPass', false);
      const concurrency = intArg(req, 'concurrency', 4, 1, LIMITS.scannerConcurrency);
      conn.takesFds = boolArg(req, 'fd', true);
      const r = state.control.remote.register(scanner, conn, { mustPass, concurrency });
      await state.control.remote.applied(); // exempt and in the stack before the client hears "ok"
      return { scanner, ...r, fd: conn.takesFds, timeoutMs: state.control.config().pool.scanTimeout };
    },
  },

  unregister: {
    root: true,
    run: ({ conn, state }) => ({ unregistered: state.control.remote.unregisterPeer(conn) }),
  },

  answer: {
    root: true,
    run: ({ conn, req, state }) => {
      state.control.remote.answer(conn, req['req'], req['answer'], req['reason']);
    },
  },

  scan: {
    root: true,
    run: async ({ conn, req, state }) => {
      const path = stringArg(req, 'path')!;
      const withProgress = boolArg(req, 'progress', true);
      const summary = await state.scanner.scan(path, conn.abort.signal, (p) => {
        if (withProgress) conn.progress(req.id ?? null, p);
      });
      return { scan: summary };
    },
  },

  explain: {
    root: true,
    run: async ({ req, state }) => {
      const path = stringArg(req, 'path')!;
      return withOpenFile('explain', path, async (fd) => ({ explain: await state.control.explain(fd, path, { scan: boolArg(req, 'scan', false) }) }));
    },
  },

  tags: {
    root: true,
    run: async ({ req, state }) => {
      const path = stringArg(req, 'path')!;
      return withOpenFile('tags', path, async (fd) => {
        const report = await state.control.readTags(fd);
        const s = report.stamp;
        return {
          path,
          stamp: { ino: String(s.ino), igen: s.igen, size: String(s.size), mtimeNs: String(s.mtimeNs) },
          tags: report.tags.map((t) => ({
            scanner: t.scanner,
            judgement: t.judgement,
            detail: t.detail ?? null,
            answer: t.value?.kind === 'result' ? t.value.answer : t.value?.kind ?? null,
            reason: t.value?.kind === 'result' ? (t.value.reason ?? null) : null,
            generation: t.value?.kind === 'result' ? t.value.generation : null,
            time: t.value?.time ?? null,
          })),
        };
      });
    },
  },

  bump: {
    root: true,
    run: async ({ req, state }) => {
      const scanner = stringArg(req, 'scanner')!;
      if (!isScannerName(scanner)) throw new ProtocolError('BAD_REQUEST', `bump: ${JSON.stringify(scanner)} is not a scanner name`);
      const bump = await bumpGeneration(state.control.config().stateDir, scanner);
      await state.control.refreshGenerations();
      return { scanner, bump, inStack: state.control.stack().some((e) => e.name === scanner) };
    },
  },

  reload: {
    root: true,
    run: async ({ state }) => {
      if (!state.reload) throw new ProtocolError('FAILED', 'reload: this daemon was not started from a config file');
      let restartNeeded: string[];
      try {
        ({ restartNeeded } = await state.reload());
      } catch (err) {
        throw new ProtocolError('FAILED', `reload refused, the old configuration stays: ${(err as Error).message}`);
      }
      return { stack: state.control.stack().map((e) => `${e.name}:${e.control}`), restartNeeded };
    },
  },
};

function notifyStats(state: ServerState) {
  const conns = [...state.connections];
  return {
    clients: conns.length,
    subscribers: conns.filter((c) => c.subscription).length,
    requests: state.counters.requests,
    badLines: state.counters.badLines,
    refused: state.counters.refused,
    noticesOut: state.counters.noticesOut,
    // Connected subscribers' losses plus those of subscribers that have left: a loss stays counted.
    noticesLost: state.counters.noticesLostGone + conns.reduce((a, c) => a + c.lostTotal, 0),
  };
}

/** What the daemon is doing, for `blessctl status`: everything an operator looks at first. */
function status(state: ServerState) {
  const { control } = state;
  const s = control.stats();
  const g = s.gate;
  const ev = Object.values(g.events).reduce((a, b) => a + b, 0);
  return {
    daemon: { pid: process.pid, host: hostname(), uptimeMs: Date.now() - state.startedAt, config: control.config().file, socket: state.socketPath },
    guards: s.guards,
    counters: {
      events: ev,
      eventsByKind: g.events,
      fastPath: { own: g.fastOwn, exempt: g.fastExempt, allowed: g.fastAllowed, denied: g.fastDenied, writer: g.fastWriter },
      forwarded: g.forwarded,
      answeredByJs: g.answeredByJs,
      answeredByDeadline: g.answeredByDeadline,
      answeredOverload: g.answeredOverload,
      answeredUidShare: g.answeredUidShare,
      answeredAccessDeadline: g.answeredAccessDeadline,
      openRefused: g.openRefused,
      overflows: g.overflows,
      verdicts: s.verdicts,
      scans: s.scans,
      errors: s.errors,
    },
    pending: { permissionEvents: g.pendingNow, heldFds: g.heldFds },
    machines: { live: s.machines, states: s.machineStates },
    queues: {
      pool: control.pool(),
      scanners: control.remote.status(),
      subscribers: [...state.connections].filter((c) => c.subscription).map((c) => ({ client: c.label, queued: c.queued, lost: c.lostTotal, withheld: c.withheld, verdicts: c.subscription!.verdicts })),
    },
    pool: { threads: control.pool().threads, utilization: control.pool().utilization },
    stack: control.stack().map((e) => ({ name: e.name, control: e.control, actor: e.actor, origin: e.origin })),
    verdictTable: g.verdictTableSize,
    settleWalk: g.settleWalk,
  };
}

/** Open a user-named path for an op without blocking on it (a FIFO, a device), run `fn`, and close it. */
async function withOpenFile<T>(op: string, path: string, fn: (fd: number) => Promise<T>): Promise<T> {
  let fd: number;
  try {
    fd = await openFd(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new ProtocolError('NOT_FOUND', `${op}: ${path}: ${(err as Error).message}`);
  }
  try {
    return await fn(fd);
  } finally {
    await closeFd(fd).catch(() => {});
  }
}
