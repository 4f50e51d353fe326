// Overview — a scan farm of clamd hosts over TCP, as one worker sees it: a ClamdClient per host, round-robin over
// the hosts that are up, health checks, and a scan moved to another host when its host fails under it.
//
// Health: every healthIntervalMs each host gets a PING on a connection of its own (not the scan session, so a
// probe never queues behind scans and always tests clamd's listener). `downAfter` failures in a row (probes or
// connection failures of scans) mark a host down; a connection dropped with a scan in flight marks it down at once
// (the host died under us). Marked down, its session is dropped, so the scans waiting on it move to another host
// at once rather than at their deadline. A down host gets no scans and is probed at the same interval; its first
// PONG marks it up. Each change of state is logged once.
//
// A scan: the next host that is up, round-robin; a host failure (unreachable, connection dropped, a protocol error)
// moves the scan to the next up host it has not tried, within the scan's one deadline
// (timeoutMs counts every attempt). No host left → the last failure stands (CLAMD_UNAVAILABLE when none was up),
// and the stack entry's onError answers. A timeout ends the scan (onTimeout): the deadline is spent.
//
// Generation: clamd's VERSION from each host, the last one each answered, sorted and joined — hosts on different
// database versions give a generation that changes with any of them (safe; keep the farm on one version).
//
// Must not: decide answers (clamd.ts), wait without a bound, or keep the worker alive (its timers are unref'd).
import { connect } from 'node:net';
import { ClamdClient, type ClientOptions } from './client.js';
import { ClamdError, describeTransport, type ClamdSession, type Request, type Transport } from './session.js';

export interface PoolOptions {
  client: Omit<ClientOptions, 'transport'>;
  healthIntervalMs: number;
  healthTimeoutMs: number;
  downAfter: number;
  /** One line per change of a host's state (workers have no logger: clamd.ts writes it to stderr). */
  log(level: 'warn' | 'info', msg: string, fields: Record<string, unknown>): void;
}

interface Host {
  where: string;
  transport: Transport;
  client: ClamdClient;
  up: boolean;
  failures: number;
  lastError: string;
  version: string | undefined;
}

/** Errors that say "this host cannot answer now", not "this file": the scan may go to another host. */
const HOST_FAILURES = new Set(['CLAMD_UNAVAILABLE', 'CLAMD_DISCONNECTED', 'CLAMD_PROTOCOL']);

export class ClamdPool {
  private readonly hosts: Host[];
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;

  constructor(
    transports: Transport[],
    private readonly o: PoolOptions,
  ) {
    this.hosts = transports.map((transport) => ({
      where: describeTransport(transport),
      transport,
      client: new ClamdClient({ ...o.client, transport }),
      up: true, // until it fails: a farm that starts with blessd is used from the first scan
      failures: 0,
      lastError: '',
      version: undefined,
    }));
    this.timer = setInterval(() => void this.probeAll(), o.healthIntervalMs);
    this.timer.unref();
  }

  get where(): string {
    return this.hosts.map((h) => h.where).join(', ');
  }

  /**
   * One request on one host after another until a host answers: round-robin over the hosts that are up, each tried
   * once, all within `timeoutMs`.
   */
  async run(make: (session: ClamdSession) => Request, timeoutMs = this.o.client.timeoutMs): Promise<{ reply: string; where: string }> {
    const deadline = Date.now() + timeoutMs;
    const tried = new Set<Host>();
    let last: Error | undefined;
    for (;;) {
      const host = this.pick(tried);
      if (!host) break;
      tried.add(host);
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const reply = await host.client.run(make, left);
        this.succeeded(host);
        return { reply, where: host.where };
      } catch (err) {
        if (!(err instanceof ClamdError)) throw err;
        last = err;
        if (err.code === 'CLAMD_TIMEOUT') {
          this.failed(host, err.message, false);
          throw err;
        }
        if (!HOST_FAILURES.has(err.code)) throw err; // CLAMD_TOO_LARGE: about the file, on any host
        // A session that dropped under a scan: the host died (or restarts). Mark it down now, not after downAfter.
        this.failed(host, err.message, err.code === 'CLAMD_DISCONNECTED');
        this.o.log('warn', 'clamd host failed a scan', { host: host.where, reason: err.message });
      }
    }
    if (last) {
      throw new ClamdError(last instanceof ClamdError ? last.code : 'CLAMD_UNAVAILABLE', `clamd farm: ${last.message}${tried.size > 1 ? ` (tried ${tried.size} hosts)` : ''}`, { cause: last });
    }
    throw new ClamdError('CLAMD_UNAVAILABLE', `clamd farm: no host up (${this.hosts.map((h) => `${h.where}: ${h.lastError || 'down'}`).join('; ')})`);
  }

  /** VERSION of every host that is up, in parallel; the generation is what each host said last. */
  async version(timeoutMs: number): Promise<string | undefined> {
    await Promise.all(
      this.hosts
        .filter((h) => h.up)
        .map(async (h) => {
          try {
            const reply = (await h.client.run((s) => s.version(), timeoutMs)).trim();
            if (!/^ClamAV /.test(reply)) throw new ClamdError('CLAMD_PROTOCOL', `clamd at ${h.where}: VERSION answered ${JSON.stringify(reply.slice(0, 100))}`);
            h.version = reply;
          } catch {
            // Restarting, or down: its last answer stands (a blip must not make every tag stale).
          }
        }),
    );
    const known = [...new Set(this.hosts.map((h) => h.version).filter((v): v is string => v !== undefined))].sort();
    return known.length > 0 ? known.join(' + ') : undefined;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    for (const h of this.hosts) h.client.close();
  }

  /** The next host that is up and not tried yet, round-robin. */
  private pick(tried: Set<Host>): Host | undefined {
    const n = this.hosts.length;
    for (let i = 0; i < n; i++) {
      const host = this.hosts[(this.next + i) % n]!;
      if (host.up && !tried.has(host)) {
        this.next = (this.next + i + 1) % n;
        return host;
      }
    }
    return undefined;
  }

  private succeeded(host: Host) {
    host.failures = 0;
    if (!host.up) {
      host.up = true;
      this.o.log('info', 'clamd host up', { host: host.where });
    }
  }

  private failed(host: Host, reason: string, now: boolean) {
    host.failures++;
    host.lastError = reason;
    if (host.up && (now || host.failures >= this.o.downAfter)) {
      host.up = false;
      this.o.log('warn', 'clamd host down', { host: host.where, failures: host.failures, reason });
      // Scans waiting on a host that stopped answering (a partition, a stopped clamd) would sit out their whole
      // deadline: dropping its session fails them now, and run() moves each to another host.
      host.client.reset();
    }
  }

  private async probeAll() {
    if (this.probing || this.closed) return; // a probe never overlaps the one before: each is bounded, the interval is not
    this.probing = true;
    try {
      await Promise.all(
        this.hosts.map(async (h) => {
          try {
            await ping(h.transport, this.o.healthTimeoutMs);
            if (!this.closed) this.succeeded(h);
          } catch (err) {
            if (!this.closed) this.failed(h, (err as Error).message, false);
          }
        }),
      );
    } finally {
      this.probing = false;
    }
  }
}

/** `PING` on a connection of its own; resolves on `PONG` within timeoutMs, else rejects naming the host. */
export function ping(transport: Transport, timeoutMs: number): Promise<void> {
  const where = describeTransport(transport);
  return new Promise((resolve, reject) => {
    const socket = transport.kind === 'unix' ? connect({ path: transport.path }) : connect({ host: transport.host, port: transport.port });
    let got = '';
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new ClamdError('CLAMD_TIMEOUT', `clamd at ${where}: no PONG within ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => done(new ClamdError('CLAMD_UNAVAILABLE', `clamd at ${where}: ${err.message}`, { cause: err })));
    socket.on('close', () => done(new ClamdError('CLAMD_DISCONNECTED', `clamd at ${where} closed the connection before PONG`)));
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const end = got.indexOf('\0');
      if (end < 0) {
        if (got.length > 64) done(new ClamdError('CLAMD_PROTOCOL', `clamd at ${where}: PING answered ${JSON.stringify(got.slice(0, 64))}`));
        return;
      }
      const reply = got.slice(0, end);
      done(reply === 'PONG' ? undefined : new ClamdError('CLAMD_PROTOCOL', `clamd at ${where}: PING answered ${JSON.stringify(reply.slice(0, 64))}`));
    });
    socket.once('connect', () => socket.write('zPING\0'));
  });
}
