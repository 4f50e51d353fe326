// Overview — the clamd client one worker keeps: a session that is (re)opened on demand, bounded concurrency, a
// deadline on every request, and a backoff after clamd could not be reached.
//
// Failure behaviour, which the stack entry's policy turns into answers: clamd not reachable → CLAMD_UNAVAILABLE
// (after waiting for the next attempt when it is due within the request's deadline); the connection dropped with requests in
// flight → CLAMD_DISCONNECTED; no reply within the deadline → CLAMD_TIMEOUT; clamd said ERROR → CLAMD_ERROR;
// over StreamMaxLength → CLAMD_TOO_LARGE. Nothing here waits without a bound.
//
// Must not: decide answers (clamd.ts), or keep a session open while idle longer than clamd would (its
// IdleTimeout, 30 s by default, closes it under a request that is being written).
import { ClamdError, ClamdSession, describeTransport, type Request, type Transport } from './session.js';

export interface ClientOptions {
  transport: Transport;
  connectTimeoutMs: number;
  timeoutMs: number;
  maxConcurrent: number;
  /** Close the session after this long without a request (below clamd's IdleTimeout). */
  idleMs: number;
  /** Longest wait before the next connection attempt after failures (doubling from 100 ms). */
  backoffMaxMs: number;
}

const FIRST_BACKOFF_MS = 100;

export class ClamdClient {
  private session: ClamdSession | undefined;
  private opening: Promise<ClamdSession> | undefined;
  private backoffMs = 0;
  private retryAt = 0;
  private lastFailure: Error | undefined;
  private running = 0;
  private readonly queue: (() => void)[] = [];
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: ClientOptions) {}

  get where(): string {
    return describeTransport(this.o.transport);
  }

  /** The open session, if any (for the peer's identity). */
  get current(): ClamdSession | undefined {
    return this.session && !this.session.closed ? this.session : undefined;
  }

  /**
   * Run one request on the session within the deadline (queueing for a slot and connecting included). The
   * request may ask for the session first (`onSession`), e.g. to choose FILDES or INSTREAM by the peer.
   */
  async run(make: (session: ClamdSession) => Request, timeoutMs = this.o.timeoutMs): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let request: Request | undefined;
    let session: ClamdSession | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ClamdError('CLAMD_TIMEOUT', `clamd at ${this.where}: no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    timedOut.catch(() => {});
    let slot = false;
    const waiting = this.acquire();
    try {
      await Promise.race([waiting.granted, timedOut]);
      slot = true;
      session = await Promise.race([this.connect(deadline), timedOut]);
      request = make(session);
      return await Promise.race([request.reply, timedOut]);
    } catch (err) {
      if (request && err instanceof ClamdError && err.code === 'CLAMD_TIMEOUT') {
        request.abandon();
        // A command that never got fully written blocks every later one on this connection: start over.
        if (!request.written && session === this.session) this.drop();
      }
      throw err;
    } finally {
      clearTimeout(timer);
      if (slot) this.release();
      else waiting.cancel();
      this.armIdle();
    }
  }

  /** Drop the session (its host was marked down): requests on it fail with CLAMD_DISCONNECTED now; the next reconnects. */
  reset(): void {
    this.drop();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.drop();
    this.queue.splice(0); // their deadlines answer them
  }

  private async connect(deadline: number): Promise<ClamdSession> {
    if (this.closed) throw new ClamdError('CLAMD_UNAVAILABLE', 'the clamd actor was closed');
    if (this.session && !this.session.closed) return this.session;
    this.session = undefined;
    if (!this.opening) {
      // Backing off: wait for the next attempt if it comes before this request's deadline (a clamd that is back
      // after a restart then costs no failure), else fail now rather than sit out a wait that cannot help.
      const wait = this.retryAt - Date.now();
      if (wait > 0) {
        if (wait >= deadline - Date.now()) {
          throw new ClamdError('CLAMD_UNAVAILABLE', `${this.lastFailure?.message ?? `clamd at ${this.where} unreachable`} (next attempt in ${wait} ms)`);
        }
        await new Promise((r) => setTimeout(r, wait));
        return this.connect(deadline);
      }
      const timeout = Math.max(1, Math.min(this.o.connectTimeoutMs, deadline - Date.now()));
      this.opening = ClamdSession.open(this.o.transport, timeout).then(
        (s) => {
          this.backoffMs = 0;
          this.retryAt = 0;
          this.session = s;
          return s;
        },
        (err: Error) => {
          this.lastFailure = err;
          this.backoffMs = Math.min(this.o.backoffMaxMs, this.backoffMs ? this.backoffMs * 2 : FIRST_BACKOFF_MS);
          this.retryAt = Date.now() + this.backoffMs;
          throw err;
        },
      );
      this.opening.then(() => (this.opening = undefined), () => (this.opening = undefined));
    }
    return this.opening;
  }

  private drop() {
    this.session?.close();
    this.session = undefined;
  }

  private armIdle() {
    clearTimeout(this.idleTimer);
    if (this.closed || !this.session) return;
    this.idleTimer = setTimeout(() => {
      if (this.session && this.session.inFlight === 0 && this.running === 0) this.drop();
      else this.armIdle();
    }, this.o.idleMs);
    // An idle connection must not keep a worker (or a test) alive.
    this.idleTimer.unref();
  }

  /** A slot among maxConcurrent; a waiter that gives up (its deadline) is taken out of the queue. */
  private acquire(): { granted: Promise<void>; cancel(): void } {
    if (this.running < this.o.maxConcurrent) {
      this.running++;
      return { granted: Promise.resolve(), cancel() {} };
    }
    let wake!: () => void;
    let woken = false;
    const granted = new Promise<void>((resolve) => (wake = () => ((woken = true), this.running++, resolve())));
    this.queue.push(wake);
    return {
      granted,
      cancel: () => {
        if (woken) return this.release(); // granted just as the deadline passed: hand the slot on
        const at = this.queue.indexOf(wake);
        if (at >= 0) this.queue.splice(at, 1);
      },
    };
  }

  private release() {
    this.running--;
    const next = this.queue.shift();
    if (next) next();
  }
}
