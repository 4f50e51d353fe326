// The control socket: a unix stream socket speaking newline-delimited JSON (docs/protocol.md) for subscribers,
// out-of-process scanners and blessctl.
//
// Overview — owns the listening socket and its file (created with mode config.socket.mode and group
// config.socket.group, removed at close), every client connection, and the fan-out of the daemon's notices. It
// must not slow the daemon: notices are encoded once and handed to each subscriber's bounded queue; nothing here
// waits for a client. Bad input gets an error reply or a closed connection; the daemon goes on.
import { chmodSync, chownSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { EventEmitter } from 'node:events';
import type { Config } from '../config/types.js';
import type { Logger } from '../daemon/logger.js';
import { Admission } from './admission.js';
import { Visibility } from './visibility.js';
import { Connection, socketFd } from './connection.js';
import { native, type PeerCred } from '../gate/addon.js';
import type { DaemonControl } from './daemon-control.js';
import { OPS, runOp, type ServerState } from './ops.js';
import { encode, idOf, LIMITS, parseRequest, PROTOCOL_VERSION, ProtocolError, type Limits } from './protocol.js';
import { TreeScanner, VerdictWaiters } from './tree-scan.js';

export interface NotifyServerOptions {
  control: DaemonControl;
  /** Emits 'notice' (the Daemon). */
  notices: EventEmitter;
  socket: Config['socket'];
  log: Logger;
  reload?: () => Promise<{ restartNeeded: string[] }>;
  /** Tests shrink these to provoke the limits quickly. */
  limits?: Partial<Limits>;
}

export class NotifyServer {
  private readonly connections = new Set<Connection>();
  private readonly waiters = new VerdictWaiters();
  private readonly state: ServerState;
  private readonly limits: Limits;
  private readonly admission: Admission;
  private readonly visibility = new Visibility();
  private ino = -1;
  private closed = false;
  private readonly onNotice = (n: Record<string, unknown>) => this.fanOut(n);

  private constructor(
    private readonly server: Server,
    private readonly opts: NotifyServerOptions,
  ) {
    this.limits = { ...LIMITS, ...opts.limits };
    this.admission = new Admission(this.limits);
    this.state = {
      control: opts.control,
      scanner: new TreeScanner(opts.control, this.waiters, this.limits.scanConcurrency, this.limits.scanMaxFiles),
      connections: this.connections,
      startedAt: Date.now(),
      socketPath: opts.socket.path,
      reload: opts.reload,
      counters: { requests: 0, badLines: 0, noticesOut: 0, refused: 0, noticesLostGone: 0 },
    };
  }

  /** Listen on config.socket.path with its mode and group. Throws (code BLESSD_SOCKET) with the path on failure. */
  static async start(opts: NotifyServerOptions): Promise<NotifyServer> {
    const { path, mode } = opts.socket;
    const gid = opts.socket.group === null ? null : groupId(opts.socket.group);
    await clearStaleSocket(path);
    const server = createServer({ allowHalfOpen: false, pauseOnConnect: false });
    const self = new NotifyServer(server, opts);
    server.on('connection', (s) => self.accept(s));
    // A backstop far above maxClients: refusals (with a reason) are ours, made per uid in accept().
    server.maxConnections = self.limits.maxClients * 4;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(socketError(path, `cannot listen: ${err.message}`)));
      // bind() happens inside listen(), synchronously: with umask 0177 the file is born 0600 (root only), so
      // nobody connects through a wider mode before chmod below sets the configured one.
      const old = process.umask(0o177);
      try {
        server.listen(path, () => resolve());
      } finally {
        process.umask(old);
      }
    });
    try {
      if (gid !== null) chownSync(path, 0, gid);
      chmodSync(path, mode);
      self.ino = lstatSync(path).ino;
    } catch (err) {
      server.close();
      throw socketError(path, `cannot set mode ${mode.toString(8)} / group ${opts.socket.group}: ${(err as Error).message}`);
    }
    opts.notices.on('notice', self.onNotice);
    opts.log.info({ socket: path, mode: '0' + mode.toString(8), group: opts.socket.group }, 'control socket listening');
    return self;
  }

  get clients(): number {
    return this.connections.size;
  }

  private accept(socket: Socket) {
    if (this.closed) return socket.destroy();
    let peer: PeerCred;
    try {
      peer = native.peerCred(socketFd(socket));
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'control socket: dropped a connection we could not identify');
      socket.destroy();
      return;
    }
    // Admission before a Connection exists: a refused client's lines are never read.
    const admitted = this.admission.admit(peer.uid);
    if (!admitted.ok) {
      this.state.counters.refused++;
      // Gone as soon as the reply is handed to the kernel: refused sockets must not pile up (each is an fd, and
      // node's own cap below would then refuse root at accept()).
      const done = () => socket.destroy();
      socket.end(encode({ v: PROTOCOL_VERSION, id: null, ok: false, error: { code: 'TOO_MANY_CLIENTS', message: admitted.message } }), done);
      setTimeout(done, 200).unref();
      return;
    }
    const conn = new Connection(socket, this.limits, (c, line) => this.onLine(c, line), (c) => this.onClose(c), peer);
    this.connections.add(conn);
  }

  private onClose(conn: Connection) {
    if (!this.connections.delete(conn)) return;
    this.admission.release(conn.peer.uid);
    this.state.counters.noticesLostGone += conn.lostTotal;
    if (conn.subscription?.verdicts) this.opts.control.hearingChanged?.();
    const names = this.opts.control.remote.unregisterPeer(conn);
    if (names.length > 0) this.opts.log.warn({ scanners: names, client: conn.label }, 'out-of-process scanner disconnected');
  }

  private onLine(conn: Connection, line: string) {
    this.state.counters.requests++;
    let req;
    try {
      req = parseRequest(line);
    } catch (err) {
      this.state.counters.badLines++;
      let id = null;
      try {
        id = idOf(JSON.parse(line));
      } catch {
        /* junk: no id to name */
      }
      const e = err as ProtocolError;
      return conn.bad(id, e.code, e.message);
    }
    const id = idOf(req);
    const op = Object.hasOwn(OPS, req.op) ? OPS[req.op] : undefined;
    if (!op) {
      this.state.counters.badLines++;
      return conn.bad(id, 'UNKNOWN_OP', `unknown op ${JSON.stringify(req.op).slice(0, 80)} (ops: ${Object.keys(OPS).sort().join(', ')})`);
    }
    if (op.root && conn.peer.uid !== 0) {
      return conn.error(id, 'EPERM', `${req.op}: only root may do this (you are uid ${conn.peer.uid})`);
    }
    runOp(op, { conn, req, state: this.state }, id, this.opts.log, 'control socket');
  }

  /** Every notice to every subscriber that wants it, encoded once. */
  /** Whether a verdict notice would reach anyone now: a subscriber that asked for verdicts, or a scan request. */
  hearsVerdicts(): boolean {
    if (this.waiters.size > 0) return true;
    for (const c of this.connections) if (c.subscription?.verdicts) return true;
    return false;
  }

  private fanOut(notice: Record<string, unknown>) {
    if (notice['event'] === 'verdict') this.waiters.deliver(notice);
    let line: string | undefined;
    const path = typeof notice['path'] === 'string' ? notice['path'] : undefined;
    for (const c of this.connections) {
      if (!c.subscription || (notice['event'] === 'verdict' && !c.subscription.verdicts)) continue;
      if (c.viewer && (path === undefined || !this.visibility.canSee(c.viewer, path))) {
        c.withheld++;
        continue;
      }
      line ??= encode({ v: PROTOCOL_VERSION, ...notice });
      c.notice(line);
      this.state.counters.noticesOut++;
    }
  }

  /** Stop listening, drop every client (scanners' requests fail per onError), remove the socket file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.opts.notices.off('notice', this.onNotice);
    for (const c of [...this.connections]) c.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      // Only our own socket file: a new daemon may already have replaced it.
      if (lstatSync(this.opts.socket.path).ino === this.ino) unlinkSync(this.opts.socket.path);
    } catch {
      /* already gone */
    }
  }
}

function socketError(path: string, message: string): Error {
  return Object.assign(new Error(`socket.path ${path}: ${message}`), { code: 'BLESSD_SOCKET' });
}

/** A leftover socket file of a dead daemon is removed; a live daemon's, or any other file, is an error. */
async function clearStaleSocket(path: string) {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw socketError(path, 'exists and is not a socket; refusing to replace it');
  const alive = await new Promise<boolean>((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (alive) throw socketError(path, 'another daemon is listening on it');
  unlinkSync(path);
}

/** A group name (looked up in /etc/group) or a gid. */
export function groupId(group: string | number): number {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  let text = '';
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    /* no group file: the name cannot be found */
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw Object.assign(new Error(`socket.group: no group named ${JSON.stringify(group)} in /etc/group`), { code: 'BLESSD_SOCKET' });
}
