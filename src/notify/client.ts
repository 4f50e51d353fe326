// A client of the control socket, for blessctl, tests and benchmarks: requests with replies (and progress),
// unsolicited events (notices, scan requests) as 'event'. Node cannot receive descriptors, so a scanner written
// with this client gets path and handle only (the daemon's scan requests say fd: true; the fd is closed by the
// kernel when a plain read takes the line). Programs that want the fd use recvmsg (see docs/protocol.md).
import { BlessdError } from '../errors.js';
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import { encode, PROTOCOL_VERSION, type ErrorCode } from './protocol.js';

export const DEFAULT_SOCKET = '/run/blessd.sock';

export class ClientError extends BlessdError<ErrorCode | 'DISCONNECTED' | 'TIMEOUT' | string> {
  constructor(code: ErrorCode | 'DISCONNECTED' | 'TIMEOUT' | string, message: string) {
    super(code, message);
  }
}

interface Pending {
  resolve: (reply: Record<string, unknown>) => void;
  reject: (err: Error) => void;
  onProgress?: (p: Record<string, unknown>) => void;
}

export class ControlClient extends EventEmitter {
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private buffer = '';
  private closed = false;

  private constructor(readonly socket: Socket) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
  }

  /** Connect; rejects with the socket error (ENOENT: no daemon, EACCES: not in the socket's group...). */
  static connect(path: string = DEFAULT_SOCKET, opts: { timeoutMs?: number } = {}): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const s = connect(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new ClientError('TIMEOUT', `${path}: no connection within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs ?? 5000);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(new ControlClient(s));
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(Object.assign(new ClientError(err.code ?? 'ECONNREFUSED', `${path}: ${err.message}`), { errno: err.errno }));
      });
    });
  }

  /** One request; resolves with the reply's fields, rejects with ClientError(code) on an error reply. */
  request(op: string, args: Record<string, unknown> = {}, opts: { onProgress?: (p: Record<string, unknown>) => void; timeoutMs?: number } = {}): Promise<Record<string, unknown>> {
    if (this.closed) return Promise.reject(new ClientError('DISCONNECTED', 'the daemon closed the connection'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        this.pending.delete(id);
      };
      this.pending.set(id, {
        resolve: (r) => (done(), resolve(r)),
        reject: (e) => (done(), reject(e)),
        onProgress: opts.onProgress,
      });
      if (opts.timeoutMs) timer = setTimeout(() => this.pending.get(id)?.reject(new ClientError('TIMEOUT', `${op}: no reply within ${opts.timeoutMs} ms`)), opts.timeoutMs);
      this.socket.write(encode({ v: PROTOCOL_VERSION, id, op, ...args }));
    });
  }

  /** Send a line without waiting for a reply (scanner answers). */
  send(op: string, args: Record<string, unknown> = {}) {
    if (!this.closed) this.socket.write(encode({ v: PROTOCOL_VERSION, op, ...args }));
  }

  private onData(d: string) {
    this.buffer += d;
    let nl;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (line.trim() === '') continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        this.emit('junk', line);
        continue;
      }
      this.dispatch(msg);
    }
  }

  private dispatch(msg: Record<string, unknown>) {
    if (typeof msg['event'] === 'string') {
      this.emit('event', msg);
      return;
    }
    const p = typeof msg['id'] === 'number' ? this.pending.get(msg['id']) : undefined;
    if (!p) {
      // An error without a request to name (bad line, TOO_MANY_CLIENTS, LINE_TOO_LONG before closing).
      if (msg['ok'] === false) this.emit('server-error', msg['error']);
      return;
    }
    if (msg['progress'] !== undefined) p.onProgress?.(msg['progress'] as Record<string, unknown>);
    else if (msg['ok'] === true) p.resolve(msg);
    else {
      const e = (msg['error'] ?? {}) as { code?: string; message?: string };
      p.reject(new ClientError(e.code ?? 'FAILED', e.message ?? 'request failed'));
    }
  }

  private onClose() {
    this.closed = true;
    for (const p of [...this.pending.values()]) p.reject(new ClientError('DISCONNECTED', 'the daemon closed the connection'));
    this.emit('close');
  }

  close() {
    this.closed = true;
    this.socket.destroy();
  }
}
