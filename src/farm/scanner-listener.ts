// Overview — the scan farm's listener: the out-of-process scanner protocol (docs/protocol.md, "Scanners") over TCP
// with TLS, so that a scanner on another host serves this file server (and, connected to each, many of them).
//
// What it owns: the TLS server (config farm.listen, farm.cert/key), each accepted connection (a FarmConnection:
// the control socket's Connection, with the scan's content sent after its request line instead of a descriptor,
// which cannot cross TCP), and the admission of peers: a client certificate signed by farm.ca (checked by TLS
// itself: a peer without one never gets a connection), a shared secret (farm.secretFile) that the first line
// must carry (`hello`), or both. A peer that fails either is refused with a log line that names its address and
// why; one that says nothing is refused after farm.helloTimeout.
//
// What a farm peer may do: hello, register, unregister, answer — nothing else of the control socket (no reload,
// no scan of paths, no subscription): it is trusted with the content it is sent, not with the daemon. Its
// registrations are the same as a local scanner's (RemoteScanners): the stack entry's onTimeout / onError answer
// when it is slow or goes away. It has no pid here, so nothing is exempted from the gate for it.
//
// Must not: block (the content is read asynchronously from the daemon's own reopened descriptor, in 1 MiB chunks
// that wait for the socket to take the one before; replies and cancels written meanwhile wait until the file's
// last byte, so no line lands inside content), hold memory for a peer that does not read (it is dropped after
// 10 s without progress), or let a request line or the content of one file reach a peer that has not
// authenticated.
import { createHash, timingSafeEqual } from 'node:crypto';
import { closeSync, constants, openSync, read, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { promisify } from 'node:util';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import type { Config } from '../config/types.js';
import { FarmError } from './errors.js';
import type { Logger } from '../daemon/logger.js';
import { Connection } from '../notify/connection.js';
import type { DaemonControl } from '../notify/daemon-control.js';
import { OPS, runOp, type ServerState } from '../notify/ops.js';
import { encode, idOf, LIMITS, parseRequest, PROTOCOL_VERSION, ProtocolError, SUPPORTED_VERSIONS, type Request, type WireScanRequest } from '../notify/protocol.js';

const readAsync = promisify(read);

/** The control socket's ops a farm peer may use. */
export const FARM_OPS = ['hello', 'register', 'unregister', 'answer'] as const;

/** A TLS peer has no process here: pid 0 is never exempted (RemoteScanners.pids). */
const NO_PROCESS = { pid: 0, uid: 0, gid: 0 };

/** The shortest shared secret accepted: a guessable one would make the TLS listener an open door. */
const MIN_SECRET_BYTES = 16;

/** Content goes out in chunks of this size, each after the socket took the one before (backpressure). */
const CHUNK = 1024 * 1024;
/** A peer that takes no bytes of a file for this long is dropped (its requests get onError). */
const STALL_MS = 10_000;

export class FarmConnection extends Connection {
  authenticated = false;
  helloTimer: NodeJS.Timeout | undefined;
  /** Scans go out one after another: the bytes of one file are never interleaved with another's. */
  private sending: Promise<void> = Promise.resolve();
  private streaming = false;
  /** What the Connection wrote (replies, cancels) while a file's bytes were on their way: sent right after them. */
  private held: (string | Buffer)[] = [];
  private readonly rawWrite: (chunk: string | Buffer) => boolean;

  constructor(...args: ConstructorParameters<typeof Connection>) {
    super(...args);
    const socket = this.socket;
    const raw = socket.write.bind(socket) as (chunk: string | Buffer) => boolean;
    this.rawWrite = raw;
    // Every other write of this connection goes through socket.write (Connection's replies and cancels): while a
    // file's content is being sent, those wait, so that no line lands inside the content.
    socket.write = ((chunk: string | Buffer) => {
      if (!this.streaming) return raw(chunk);
      this.held.push(chunk);
      return true;
    }) as typeof socket.write;
  }

  /**
   * The request line with `"content": size`, then exactly `size` bytes of the file. Read through our own reopening
   * of the descriptor, made now, while the scan's owner still holds its fd (it may close it at a timeout while
   * this waits its turn); the number is never reopened later, when it could name another file.
   */
  override sendScan(request: Omit<WireScanRequest, 'v' | 'event' | 'fd'>, fd: number): Promise<void> {
    if (this.socket.destroyed) throw new Error('the scanner disconnected');
    const own = openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY | constants.O_NOCTTY);
    const run = () => this.stream(own, request).finally(() => closeSync(own));
    const sent = this.sending.then(run, run);
    this.sending = sent.catch(() => {});
    return sent;
  }

  private async stream(fd: number, request: Omit<WireScanRequest, 'v' | 'event' | 'fd'>): Promise<void> {
    if (this.socket.destroyed) throw new Error('the scanner disconnected');
    const size = request.size;
    this.streaming = true;
    try {
      this.rawWrite(encode({ v: PROTOCOL_VERSION, event: 'scan', ...request, fd: false, content: size }));
      for (let at = 0; at < size; ) {
        const want = Math.min(CHUNK, size - at);
        const chunk = Buffer.allocUnsafe(want);
        let got = 0;
        while (got < want) {
          const { bytesRead } = await readAsync(fd, chunk, got, want - got, at + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        // The file shrank while it was sent: zeros keep the framing. Its answer is dropped anyway (the change
        // cleared its tags, and the result's replace fails).
        if (got < want) chunk.fill(0, got);
        at += want;
        if (this.socket.destroyed) throw new Error('the scanner disconnected');
        if (!this.rawWrite(chunk)) await this.drained();
      }
    } finally {
      this.streaming = false;
      for (const c of this.held.splice(0)) this.rawWrite(c);
    }
  }

  /** The socket took what it had (or closed); a peer that reads nothing for STALL_MS is dropped. */
  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        this.close();
      }, STALL_MS);
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }
}

export interface FarmListenerOptions {
  farm: Config['farm'];
  control: DaemonControl;
  log: Logger;
}

export class FarmListener {
  private readonly connections = new Set<FarmConnection>();
  private readonly state: ServerState;
  private readonly secretDigest: Buffer | null;
  private closed = false;
  private refusals = { windowStart: 0, logged: 0, suppressed: 0 };

  private constructor(
    private readonly server: Server,
    private readonly o: FarmListenerOptions,
    secret: string | null,
  ) {
    this.secretDigest = secret === null ? null : digest(secret);
    // Only register / unregister / answer reach OPS, and they use nothing of the state but the daemon's control.
    this.state = {
      control: o.control,
      scanner: undefined as never,
      connections: this.connections,
      startedAt: Date.now(),
      socketPath: '',
      counters: { requests: 0, badLines: 0, noticesOut: 0, refused: 0, noticesLostGone: 0 },
    };
  }

  /** Listen on farm.listen with TLS. Throws (code BLESSD_FARM) naming the key and file on any setup failure. */
  static async start(o: FarmListenerOptions): Promise<FarmListener> {
    const f = o.farm;
    if (!f.listen || !f.cert || !f.key) throw new FarmError('farm.listen, farm.cert and farm.key are required');
    const file = (key: 'cert' | 'key' | 'ca' | 'secretFile', path: string) => {
      try {
        return readFileSync(path);
      } catch (err) {
        throw new FarmError(`farm.${key} ${path}: ${(err as Error).message}`, err);
      }
    };
    let secret: string | null = null;
    if (f.secretFile) {
      secret = file('secretFile', f.secretFile).toString('utf8').replace(/\r?\n$/, '');
      if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) throw new FarmError(`farm.secretFile ${f.secretFile}: the secret must be at least ${MIN_SECRET_BYTES} bytes`);
    }
    const server = createServer({
      cert: file('cert', f.cert),
      key: file('key', f.key),
      // The certificate is checked in accept(), before anything is read from the peer: TLS's own refusal would
      // leave the log a "socket hang up" (TLS 1.3 ends the handshake before the client's certificate is judged).
      ...(f.ca ? { ca: file('ca', f.ca), requestCert: true, rejectUnauthorized: false } : {}),
      minVersion: 'TLSv1.2',
    });
    const self = new FarmListener(server, o, secret);
    server.on('secureConnection', (s) => self.accept(s));
    // A failed handshake: not TLS, no common version or cipher, the peer gave up.
    server.on('tlsClientError', (err, s) => self.refused(`${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`, err.message));
    server.maxConnections = LIMITS.maxClients;
    const { host, port } = f.listen;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new FarmError(`farm.listen ${host}:${port}: cannot listen: ${err.message}`, err)));
      server.listen(port, host, () => resolve());
    });
    const bound = self.address;
    o.log.info({ listen: `${host}:${port}`, port: bound.port, clientCertificates: f.ca !== null, secret: secret !== null }, 'farm: scanner listener (TLS) up');
    return self;
  }

  /** The bound address (port 0 in the config picks one). */
  get address(): { address: string; port: number } {
    return this.server.address() as { address: string; port: number };
  }

  private accept(socket: TLSSocket) {
    if (this.closed) return socket.destroy();
    const cert = socket.getPeerCertificate();
    const hasCert = cert !== null && Object.keys(cert).length > 0;
    const cn = hasCert && typeof cert.subject?.CN === 'string' ? ` CN=${cert.subject.CN}` : '';
    const label = `tls ${socket.remoteAddress}:${socket.remotePort}${cn}`;
    if (this.o.farm.ca && !socket.authorized) {
      const reason = hasCert ? `client certificate not signed by farm.ca (${String(socket.authorizationError)})` : 'no client certificate (farm.ca asks for one)';
      this.refused(label, reason);
      socket.end(encode({ v: PROTOCOL_VERSION, id: null, ok: false, error: { code: 'EPERM', message: `refused: ${reason}` } }));
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const conn = new FarmConnection(socket, LIMITS, (c, line) => this.onLine(c as FarmConnection, line), (c) => this.onClose(c as FarmConnection), NO_PROCESS, label);
    conn.takesFds = false;
    this.connections.add(conn);
    if (this.secretDigest === null) {
      conn.authenticated = true; // TLS checked the certificate before this connection existed
      return;
    }
    conn.helloTimer = setTimeout(() => {
      if (!conn.authenticated) this.refuse(conn, `no hello with the secret within ${this.o.farm.helloTimeoutMs} ms`);
    }, this.o.farm.helloTimeoutMs);
    conn.helloTimer.unref();
  }

  private onClose(conn: FarmConnection) {
    clearTimeout(conn.helloTimer);
    if (!this.connections.delete(conn)) return;
    const names = this.o.control.remote.unregisterPeer(conn);
    if (names.length > 0) this.o.log.warn({ scanners: names, client: conn.label }, 'farm: scanner disconnected');
  }

  private onLine(conn: FarmConnection, line: string) {
    let req: Request;
    try {
      req = parseRequest(line);
    } catch (err) {
      let id = null;
      try {
        id = idOf(JSON.parse(line));
      } catch {
        /* junk: no id to name */
      }
      if (!conn.authenticated) return this.refuse(conn, `first line is not a hello: ${(err as Error).message}`);
      return conn.bad(id, (err as ProtocolError).code, (err as Error).message);
    }
    const id = idOf(req);
    if (!conn.authenticated) {
      if (req.op !== 'hello') return this.refuse(conn, `${JSON.stringify(req.op).slice(0, 40)} before hello: the first line must be a hello with the secret`);
      const given = req['secret'];
      if (typeof given !== 'string') return this.refuse(conn, 'hello without a secret');
      if (!timingSafeEqual(digest(given), this.secretDigest!)) return this.refuse(conn, 'wrong secret');
      conn.authenticated = true;
      clearTimeout(conn.helloTimer);
      this.o.log.info({ client: conn.label }, 'farm: scanner authenticated');
    }
    if (!(FARM_OPS as readonly string[]).includes(req.op)) {
      return conn.bad(id, 'UNKNOWN_OP', `${JSON.stringify(req.op).slice(0, 80)} is not open to farm scanners (ops: ${FARM_OPS.join(', ')})`);
    }
    if (req.op === 'hello') {
      return conn.reply(id, { server: 'blessd', version: PROTOCOL_VERSION, versions: SUPPORTED_VERSIONS, host: hostname(), ops: [...FARM_OPS], content: 'follows each scan line' });
    }
    if (req.op === 'register') {
      if (req['fd'] === true) return conn.error(id, 'BAD_REQUEST', 'register: descriptors cannot cross TCP ("fd": true); the content follows each scan line');
      req['fd'] = false;
    }
    runOp(OPS[req.op]!, { conn, req, state: this.state }, id, this.o.log, 'farm');
  }

  private refuse(conn: FarmConnection, reason: string) {
    this.refused(conn.label, reason);
    conn.fatal('EPERM', `refused: ${reason}`);
  }

  /** One log line per refusal, at most 20 a second; the next line logged counts those left out. */
  private refused(peer: string, reason: string) {
    const now = Date.now();
    const r = this.refusals;
    if (now - r.windowStart >= 1000) {
      r.windowStart = now;
      r.logged = 0;
    }
    if (r.logged >= 20) {
      r.suppressed++;
      return;
    }
    r.logged++;
    this.o.log.warn({ peer, reason, ...(r.suppressed > 0 ? { notLogged: r.suppressed } : {}) }, 'farm: refused a scanner');
    r.suppressed = 0;
  }

  /** Stop listening and drop every peer (their requests get the entries' onError). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.connections]) c.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}
