// One client of the control socket: bounded line reading, replies, the subscriber's bounded notice queue, and scan
// requests with a descriptor over SCM_RIGHTS.
//
// Overview — what it owns: the net.Socket (destroyed on close, never left half-open by us), the notice queue (at
// most `subscriberQueue` lines, then one "lost" marker that counts), and every descriptor it opens to send (closed
// right after sendmsg: the kernel has installed the receiver's copy by then). It must not: block (every write is
// non-blocking; a client that does not read is dropped or loses notices, never waits for), or let bytes of one line
// overtake another (sendFd only goes straight to the kernel when node holds no unsent bytes of this socket).
import { closeSync, constants, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import { native, type PeerCred } from '../gate/addon.js';
import { encode, PROTOCOL_VERSION, type ErrorCode, type RequestId, type WireScanRequest } from './protocol.js';
import type { ScannerPeer } from './remote-scanners.js';
import type { Viewer } from './visibility.js';

export interface ConnectionLimits {
  maxLine: number;
  subscriberQueue: number;
  maxUnread: number;
  maxBadLines: number;
}

type Queued = string | { lost: number };

let nextId = 1;

/**
 * The descriptor under a net.Socket. `_handle.fd` is libuv's own (uv_fileno), read-only here: we never close it or
 * change its flags, and only call sendmsg/getsockopt on it synchronously, while the socket is open, so libuv cannot
 * close or reuse it under us.
 */
export function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('control socket: no descriptor under this connection');
  return fd;
}

export class Connection implements ScannerPeer {
  readonly id = nextId++;
  readonly peer: PeerCred;
  readonly label: string;
  /** Subscribed: 'dirty' only, or 'dirty' and 'verdict'. */
  subscription: { verdicts: boolean } | null = null;
  /** Take descriptors with scan requests (registered scanners that said fd: false do not). */
  takesFds = true;
  readonly abort = new AbortController();
  sent = 0;
  lostTotal = 0;
  badLines = 0;
  /** Non-root subscribers: who it is, for what it may hear (visibility.ts); null for root. */
  viewer: Viewer | null = null;
  /** Notices not sent because this uid could not have found the file. */
  withheld = 0;

  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private queue: Queued[] = [];
  private closed = false;

  constructor(
    readonly socket: Socket,
    private readonly limits: ConnectionLimits,
    private readonly onLine: (conn: Connection, line: string) => void,
    private readonly onClose: (conn: Connection) => void,
    peer?: PeerCred,
    /** How logs and status name the client (a farm peer: its address and certificate). */
    label?: string,
  ) {
    this.peer = peer ?? native.peerCred(socketFd(socket));
    this.label = label ?? `pid ${this.peer.pid} uid ${this.peer.uid}`;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.flush());
    socket.on('error', () => {}); // ECONNRESET, EPIPE: the close handler does the rest
    socket.on('close', () => this.close());
  }

  get pid(): number {
    return this.peer.pid;
  }

  get queued(): number {
    return this.queue.length;
  }

  // ---- reading -------------------------------------------------------------------------------------------------

  private onData(chunk: Buffer) {
    let rest = chunk;
    while (!this.closed) {
      const nl = rest.indexOf(10);
      if (nl < 0) {
        this.pending.push(rest);
        this.pendingBytes += rest.length;
        if (this.pendingBytes > this.limits.maxLine) this.fatal('LINE_TOO_LONG', `a line is longer than ${this.limits.maxLine} bytes`);
        return;
      }
      const head = rest.subarray(0, nl);
      const lineBytes = this.pendingBytes + head.length;
      const line = this.pending.length > 0 ? Buffer.concat([...this.pending, head], lineBytes) : head;
      this.pending = [];
      this.pendingBytes = 0;
      rest = rest.subarray(nl + 1);
      if (lineBytes > this.limits.maxLine) return this.fatal('LINE_TOO_LONG', `a line is longer than ${this.limits.maxLine} bytes`);
      const text = line.toString('utf8').trim();
      if (text !== '') this.onLine(this, text);
    }
  }

  /** A bad line: answered, counted; too many and the connection goes. */
  bad(id: RequestId, code: ErrorCode, message: string) {
    this.error(id, code, message);
    if (++this.badLines >= this.limits.maxBadLines) this.fatal('BAD_REQUEST', `${this.badLines} bad requests: closing`);
  }

  // ---- writing -------------------------------------------------------------------------------------------------

  reply(id: RequestId, result: object = {}) {
    this.write({ v: PROTOCOL_VERSION, id, ok: true, ...result });
  }

  error(id: RequestId, code: ErrorCode, message: string) {
    this.write({ v: PROTOCOL_VERSION, id, ok: false, error: { code, message } });
  }

  progress(id: RequestId, progress: object) {
    this.write({ v: PROTOCOL_VERSION, id, progress });
  }

  /** Replies and progress. A client that lets megabytes pile up unread is not worth holding memory for. */
  private write(message: object) {
    if (this.closed) return;
    this.socket.write(encode(message));
    if (this.socket.writableLength > this.limits.maxUnread) this.close();
  }

  /** Reply with an error and close (after the reply is flushed, or at once if the client does not read). */
  fatal(code: ErrorCode, message: string) {
    if (this.closed) return;
    this.socket.write(encode({ v: PROTOCOL_VERSION, id: null, ok: false, error: { code, message } }));
    this.socket.end();
    this.closed = true;
    this.abort.abort();
    // end() waits for the peer to read; one that never does must not keep the socket.
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.onClose(this);
  }

  /** A notice, already encoded. Never blocks: a slow subscriber gets a bounded queue, then "lost N". */
  notice(line: string) {
    if (this.closed) return;
    if (this.queue.length === 0 && !this.socket.writableNeedDrain) {
      this.socket.write(line);
      this.sent++;
      return;
    }
    if (this.queue.length < this.limits.subscriberQueue) {
      this.queue.push(line);
      return;
    }
    // Full: count what we drop in one marker at the end, so the subscriber learns where the gap is.
    const last = this.queue[this.queue.length - 1];
    if (typeof last === 'object') last.lost++;
    else this.queue.push({ lost: 1 });
    this.lostTotal++;
  }

  private flush() {
    while (this.queue.length > 0 && !this.socket.writableNeedDrain && !this.closed) {
      const item = this.queue.shift()!;
      if (typeof item === 'string') {
        this.socket.write(item);
        this.sent++;
      } else {
        this.socket.write(encode({ v: PROTOCOL_VERSION, event: 'lost', time: Date.now(), count: item.lost }));
      }
    }
  }

  // ---- scan requests (ScannerPeer) -----------------------------------------------------------------------------

  sendScan(request: Omit<WireScanRequest, 'v' | 'event' | 'fd'>, fd: number): void {
    if (this.closed) throw new Error('the scanner disconnected');
    const base = { v: PROTOCOL_VERSION, event: 'scan' as const, ...request };
    if (this.takesFds && this.sendWithFd(encode({ ...base, fd: true }), fd)) return;
    this.socket.write(encode({ ...base, fd: false }));
  }

  sendCancel(req: number): void {
    if (!this.closed) this.socket.write(encode({ v: PROTOCOL_VERSION, event: 'cancel', req }));
  }

  /**
   * The line through sendmsg with a descriptor on its first byte. The scanner gets its own open file description
   * (a reopen of /proc/self/fd/N, made by our pid, which the gate lets through on its own thread): its read()s
   * then move its own offset, not the one every scan of this file shares. Returns false when nothing was sent
   * (node holds unsent bytes, or the socket buffer is full): the caller sends the line without a descriptor.
   */
  private sendWithFd(line: string, fd: number): boolean {
    if (this.socket.writableLength > 0) return false;
    let own = -1;
    try {
      own = openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
    } catch {
      /* the magic link failed (rare): share our description */
    }
    const bytes = Buffer.from(line);
    try {
      const n = native.sendFd(socketFd(this.socket), own >= 0 ? own : fd, bytes);
      if (n < bytes.length) this.socket.write(bytes.subarray(n)); // the rest follows through libuv, in order
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') return false;
      throw err;
    } finally {
      if (own >= 0) closeSync(own);
    }
  }

  close() {
    if (this.closed) {
      this.socket.destroy();
      return;
    }
    this.closed = true;
    this.queue = [];
    this.abort.abort();
    this.socket.destroy();
    this.onClose(this);
  }
}
