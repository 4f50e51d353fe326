// Overview — one connection to clamd, inside an IDSESSION.
//
// Owns the socket and the numbering of commands. Commands are written one after another through a write chain
// (an INSTREAM is a command plus its chunks; nothing may interleave with it), while replies are read as they
// come: clamd answers in the order its threads finish, not in the order it read the commands, and a client that
// stops reading while it writes can deadlock with a clamd whose send buffer is full. Each reply is routed by its
// number to the request waiting for it.
//
// Must not: open or close the scanned file (the caller's fd is passed as is), retry anything (the client
// decides), or wait without a bound (every request carries its own deadline; see client.ts).
import { BlessdError } from '../../src/errors.js';
import { connect, type Socket } from 'node:net';
import { splitNumbered } from './reply.js';

export type Transport = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export interface FdPassing {
  /** sendmsg(SCM_RIGHTS) on the connected socket's fd: `fd` rides on the first byte of `bytes`. */
  sendFd(socketFd: number, fd: number, bytes: Buffer): number;
}

export type ClamdErrorCode = 'CLAMD_UNAVAILABLE' | 'CLAMD_DISCONNECTED' | 'CLAMD_TIMEOUT' | 'CLAMD_PROTOCOL' | 'CLAMD_ERROR' | 'CLAMD_TOO_LARGE';

export class ClamdError extends BlessdError<ClamdErrorCode> {
  constructor(code: ClamdErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

interface Pending {
  resolve(reply: string): void;
  reject(err: Error): void;
}

const NUL = Buffer.from([0]);
const END_OF_STREAM = Buffer.alloc(4); // a zero-length chunk ends an INSTREAM

export function describeTransport(t: Transport): string {
  return t.kind === 'unix' ? t.path : `${t.host}:${t.port}`;
}

export class ClamdSession {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Ids whose caller gave up (deadline): their late replies are dropped, not mistaken for protocol errors. */
  private readonly abandoned = new Set<number>();
  private received: Buffer = Buffer.alloc(0);
  private writes: Promise<void> = Promise.resolve();
  private closedWith: Error | undefined;
  lastUsed = Date.now();

  private constructor(
    private readonly socket: Socket,
    readonly transport: Transport,
  ) {
    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('error', (err) => this.fail(new ClamdError('CLAMD_DISCONNECTED', `clamd at ${describeTransport(transport)}: ${err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new ClamdError('CLAMD_DISCONNECTED', `clamd at ${describeTransport(transport)} closed the connection`)));
  }

  /** Connect and start an IDSESSION; rejects with CLAMD_UNAVAILABLE within `timeoutMs`. */
  static open(transport: Transport, timeoutMs: number): Promise<ClamdSession> {
    return new Promise((resolve, reject) => {
      const socket = transport.kind === 'unix' ? connect({ path: transport.path }) : connect({ host: transport.host, port: transport.port });
      const where = describeTransport(transport);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ClamdError('CLAMD_UNAVAILABLE', `clamd at ${where}: no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new ClamdError('CLAMD_UNAVAILABLE', `clamd at ${where}: ${err.message}`, { cause: err }));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.setNoDelay(true);
        const session = new ClamdSession(socket, transport);
        session.write(Buffer.from('zIDSESSION\0')).catch(() => {});
        resolve(session);
      });
    });
  }

  get closed(): boolean {
    return this.closedWith !== undefined;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  /** The socket's descriptor, for SO_PEERCRED and SCM_RIGHTS (node's net.Socket offers neither). */
  get fd(): number {
    const fd = (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new ClamdError('CLAMD_DISCONNECTED', 'clamd connection has no descriptor');
    return fd;
  }

  /** `VERSION`: engine version / database version / database build time. */
  version(): Request {
    return this.command((send) => send(Buffer.from('zVERSION\0')));
  }

  /** `FILDES`: clamd scans the open file itself. The descriptor follows the command on a byte of its own. */
  fildes(fd: number, passing: FdPassing): Request {
    return this.command(async (send) => {
      await send(Buffer.from('zFILDES\0'));
      await this.sendDescriptor(fd, passing);
    });
  }

  /** `INSTREAM`: the content in chunks (4-byte big-endian length, then the bytes), ended by a zero-length chunk. */
  instream(chunks: AsyncIterable<Buffer>): Request {
    return this.command(async (send) => {
      await send(Buffer.from('zINSTREAM\0'));
      for await (const chunk of chunks) {
        if (this.closed) return; // clamd hung up (e.g. the size limit): the reply, if any, is already routed
        const header = Buffer.allocUnsafe(4);
        header.writeUInt32BE(chunk.length, 0);
        await send(Buffer.concat([header, chunk]));
      }
      await send(END_OF_STREAM);
    });
  }

  /** End the session politely, then the connection. Requests still waiting fail with CLAMD_DISCONNECTED. */
  close(): void {
    if (this.closed) return;
    if (this.pending.size === 0) this.socket.end(Buffer.from('zEND\0'));
    this.socket.destroy();
    this.fail(new ClamdError('CLAMD_DISCONNECTED', `clamd connection to ${describeTransport(this.transport)} closed by blessd`));
  }

  /** Number the command now (clamd counts in the order it reads), write it after every earlier command. */
  private command(write: (send: (b: Buffer) => Promise<void>) => Promise<void>): Request {
    if (this.closedWith) return failedRequest(this.closedWith);
    const id = this.nextId++;
    this.lastUsed = Date.now();
    let written!: Promise<void>;
    const reply = new Promise<string>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      written = this.writes = this.writes.then(() => (this.closedWith ? undefined : write((b) => this.write(b))));
      written.catch((err: Error) => {
        // A command cut in half leaves clamd's reader out of step with ours: this connection is done.
        this.fail(new ClamdError('CLAMD_DISCONNECTED', `writing to clamd at ${describeTransport(this.transport)}: ${err.message}`, { cause: err }));
      });
    });
    reply.catch(() => {}); // the caller may give up first; a later rejection is not unhandled
    let writtenDone = false;
    written.then(() => (writtenDone = true), () => {});
    return {
      id,
      reply,
      get written() {
        return writtenDone;
      },
      abandon: () => {
        if (this.pending.delete(id)) this.abandoned.add(id);
      },
    };
  }

  private write(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.closedWith) return reject(this.closedWith);
      this.socket.write(bytes, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * The descriptor goes straight to the kernel (sendmsg), so node must hold no unsent bytes of this socket or it
   * would overtake them: the write chain guarantees that (every earlier write's callback has run). A full socket
   * buffer (EAGAIN) is waited out in short steps; the request's deadline bounds the wait.
   */
  private async sendDescriptor(fd: number, passing: FdPassing): Promise<void> {
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      if (this.closedWith) throw this.closedWith;
      if (this.socket.writableLength === 0) {
        try {
          if (passing.sendFd(this.fd, fd, NUL) === 1) return;
        } catch (err) {
          if ((err as { code?: string }).code !== 'EAGAIN') throw err;
        }
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private onData(data: Buffer) {
    this.received = this.received.length === 0 ? data : Buffer.concat([this.received, data]);
    for (;;) {
      const end = this.received.indexOf(0);
      if (end < 0) break;
      const text = this.received.toString('utf8', 0, end);
      this.received = this.received.subarray(end + 1);
      this.route(text);
    }
    if (this.received.length > 64 * 1024) this.fail(new ClamdError('CLAMD_PROTOCOL', 'clamd sent a reply longer than 64 KiB without its terminator'));
  }

  private route(text: string) {
    const numbered = splitNumbered(text);
    if (!numbered) {
      // A reply without a number concerns the session itself (e.g. a protocol error): nothing can be trusted after it.
      this.fail(new ClamdError(/size limit exceeded/i.test(text) ? 'CLAMD_TOO_LARGE' : 'CLAMD_PROTOCOL', `clamd: ${text.trim()}`));
      this.socket.destroy();
      return;
    }
    const waiter = this.pending.get(numbered.id);
    if (waiter) {
      this.pending.delete(numbered.id);
      waiter.resolve(numbered.body);
    } else if (!this.abandoned.delete(numbered.id)) {
      this.fail(new ClamdError('CLAMD_PROTOCOL', `clamd answered command ${numbered.id}, which nobody sent`));
      this.socket.destroy();
    }
  }

  private fail(err: Error) {
    if (!this.closedWith) this.closedWith = err;
    for (const [, p] of this.pending) p.reject(err);
    this.pending.clear();
  }
}

export interface Request {
  readonly id: number;
  readonly reply: Promise<string>;
  /** Whether the whole command (and its stream) reached the kernel. */
  readonly written: boolean;
  /** The caller stopped waiting: drop the reply when it comes. */
  abandon(): void;
}

function failedRequest(err: Error): Request {
  const reply = Promise.reject(err);
  reply.catch(() => {});
  return { id: 0, reply, written: false, abandon() {} };
}
