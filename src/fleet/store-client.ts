// Overview — one connection to the fleet store per worker thread and store URL (ioredis), bounded in time on
// every path: the store is an accelerator, never a dependency.
// - A lookup waits at most `timeoutMs` (config fleet.timeout) for its answer; a store that is down, slow or not
//   reachable costs each lookup at most that, and only until the connection is known to be gone: then commands
//   fail at once (no offline queue) until it is back (ioredis reconnects in the background, backing off).
// - The first lookup of a fresh client waits for the connection to come up, within the same bound (a worker starts
//   its client at its first file: without this wait, the first file of every worker would miss).
// - Publishing never holds a file: the caller does not await it; its result only feeds the counters.
// - TLS (rediss://, rediss+cluster://): fleet.tls's PEM text (tls.ts) on every connection, each node's too. A
//   handshake that fails (an untrusted certificate, a name that does not match) is a connection that fails: the
//   same bounds, reconnects in the background, the reason kept for the log.
// - A cluster (redis+cluster://, store-url.ts) gets the same guarantees: no offline queue, no retry delays (a
//   lookup never waits for a failover or a down cluster: it fails and the file is scanned), the client finds the
//   nodes from the ones named and reconnects in the background. A node that is gone fails the lookups whose keys
//   it serves at once; the others still answer.
// Must not: throw to the caller for a store problem (every failure is a StoreFailure value), queue without bound,
// or keep a worker alive by itself.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { parseStoreUrl } from './store-url.js';
import type { StoreTls } from './tls.js';

export interface StoreFailure {
  failed: true;
  why: string;
}

export type Lookup = { failed: false; values: (Buffer | null)[] } | StoreFailure;

const clients = new Map<string, StoreClient>();
const PUBLISH_FIRST_WAIT_MS = 5_000;
/** ioredis's message for a command on a connection that is gone (says nothing of why). */
const CLOSED = 'Connection is closed.';

/** The worker's client for this URL, timeout and TLS, made at first use. */
export function storeClient(url: string, timeoutMs: number, tls?: StoreTls): StoreClient {
  const id = `${timeoutMs}\0${url}\0${tls ? JSON.stringify(tls) : ''}`;
  let c = clients.get(id);
  if (!c) {
    c = new StoreClient(url, timeoutMs, tls);
    clients.set(id, c);
  }
  return c;
}

export class StoreClient {
  private readonly redis: Redis | Cluster;
  private readonly cluster: boolean;
  private everReady = false;
  private lastError = '';
  private lastNodeError = '';
  private lastClusterError = '';
  private handshaking = false;
  private firstWait?: Promise<void>;
  private firstPublishWait?: Promise<void>;

  constructor(
    url: string,
    private readonly timeoutMs: number,
    tls?: StoreTls,
  ) {
    const target = parseStoreUrl(url);
    if ('problem' in target) throw new Error(`fleet store URL: ${target.problem}`); // the config loader refused it already
    // Set whenever the URL says TLS (ioredis would only see rediss:// spelt in lower case, and never a cluster's).
    const tlsOptions: ConnectionOptions | undefined = target.tls ? { ...tls, minVersion: 'TLSv1.2' } : undefined;
    const bounded: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: timeoutMs,
      connectTimeout: Math.max(1000, timeoutMs),
      enableReadyCheck: false,
      connectionName: 'blessd',
      ...(tlsOptions && { tls: tlsOptions }),
    };
    // Reconnect in the background, backing off to 2 s: lookups meanwhile fail at once (no offline queue).
    const backOff = (times: number) => Math.min(50 * times, 2000);
    this.cluster = target.kind === 'cluster';
    if (target.kind === 'single') {
      // The lookups of a judge batch are issued in one tick: one write to the socket for all of them.
      this.redis = new Redis(url, { ...bounded, retryStrategy: backOff, enableAutoPipelining: true });
    } else {
      this.redis = new Cluster(target.nodes, {
        // Per node. ioredis gives each node connection an offline queue whatever is asked, but commandTimeout
        // bounds a queued command too; a lost node is dropped (no per-node retry) until the slots say where to go.
        redisOptions: { ...bounded, ...(target.username === undefined ? {} : { username: target.username }), ...(target.password === undefined ? {} : { password: target.password }) },
        enableOfflineQueue: false,
        enableReadyCheck: false,
        clusterRetryStrategy: backOff,
        slotsRefreshTimeout: Math.max(1000, timeoutMs),
        // ioredis's defaults wait 100 ms and resend on a lost node, CLUSTERDOWN or TRYAGAIN: a lookup that waits
        // for the cluster to heal holds a permission event, so it fails instead and the file is scanned.
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
        // One pipeline per node, all written in the same tick: a file's keys on several nodes cost one round trip.
        enableAutoPipelining: true,
      });
      // The cluster's own errors say little ("Failed to refresh slots cache."): the last node's error says why
      // (refused, a TLS handshake's certificate problem), so it is what the log keeps.
      // A failed connection reports its cause, then "Connection is closed." for the command it was asked: the cause
      // is kept. But the connection that asks for the slots is ioredis's own duplicate, whose errors it drops: a
      // failed TLS handshake there reads only "Connection is closed.", so one handshake of our own asks why.
      this.redis.on('node error', (err: Error, node?: string) => {
        const at = `${node ?? 'a node'}: `;
        if (err.message === CLOSED && this.lastNodeError.startsWith(at)) return;
        this.lastNodeError = `${at}${err.message}`;
        if (err.message === CLOSED && tlsOptions && node) this.askHandshake(node, tlsOptions);
      });
      this.redis.on('+node', (node: Redis) => node.on('connect', () => unref(node)));
    }
    this.redis.on('ready', () => (this.everReady = true));
    // Each command reports its own failure; this is the reason kept for the log.
    this.redis.on('error', (err: Error) => {
      this.lastClusterError = err.message;
      this.lastError = this.lastNodeError ? `${err.message} (${this.lastNodeError})` : err.message;
    });
    // The socket must not keep a worker thread alive (Piscina ends idle workers by terminate anyway).
    if (this.redis instanceof Redis) {
      const r = this.redis;
      r.on('connect', () => unref(r));
    }
  }

  /** The values at `keys` (null: none), or why not: bounded by the timeout. */
  async get(keys: string[]): Promise<Lookup> {
    if (this.redis.status !== 'ready') {
      if (this.everReady) return this.failure(`store not connected (${this.redis.status})${this.lastError ? `: ${this.lastError}` : ''}`);
      // A fresh client: wait for its first connection once, within the lookup's bound.
      this.firstWait ??= this.readyWithin(this.timeoutMs);
      await this.firstWait;
      if (!this.ready()) return this.failure(`store not reachable within ${this.timeoutMs} ms${this.lastError ? `: ${this.lastError}` : ''}`);
    }
    try {
      // ioredis's commandTimeout bounds a sent command; nothing waits unsent (no offline queue, and status is ready).
      if (!this.cluster) return { failed: false, values: await this.redis.mgetBuffer(...keys) };
      // A cluster refuses MGET across slots (CROSSSLOT), and a file's keys differ in scanner and generation, so
      // they land in different slots. One GET per key rather than hash tags ({digest}) in the keys: the keys stay
      // the same in both modes (a fleet can move from one Redis to a cluster, and the MAC covers the key), and the
      // GETs still go out in one tick, one pipeline per node. Any key failing fails the lookup (a partial answer
      // would count as misses). Each redirection (MOVED, ASK) gets a commandTimeout of its own, so the lookup as a
      // whole is bounded here.
      return await deadline(Promise.all(keys.map((k) => this.redis.getBuffer(k))).then((values) => ({ failed: false as const, values })), this.timeoutMs);
    } catch (err) {
      return this.failure((err as Error).message);
    }
  }

  /**
   * Publish a verdict: written once per key (SET NX), except a deny, which overwrites (a deny from any host counts,
   * and an allow never replaces one). Resolves true if written, false if the key held one already.
   */
  async publish(key: string, value: string, ttlS: number, deny: boolean): Promise<boolean | StoreFailure> {
    // Nobody waits for a publish: a fresh client's first connection may take longer than a lookup may.
    if (!this.ready() && !this.everReady) await (this.firstPublishWait ??= this.readyWithin(Math.max(PUBLISH_FIRST_WAIT_MS, this.timeoutMs)));
    if (!this.ready()) return this.failure(`store not connected (${this.redis.status})`);
    try {
      const r = deny ? await this.redis.set(key, value, 'EX', ttlS) : await this.redis.set(key, value, 'EX', ttlS, 'NX');
      return r === 'OK';
    } catch (err) {
      return this.failure((err as Error).message);
    }
  }

  /** Drop the connection and stop reconnecting (tests, benches; a worker's client lives as long as the worker). */
  close(): void {
    this.redis.disconnect(false);
    for (const [id, c] of clients) if (c === this) clients.delete(id);
  }

  /** One TLS handshake with `node` ("host:port"); its failure, if any, becomes the node's error in the log. */
  private askHandshake(node: string, tls: ConnectionOptions): void {
    if (this.handshaking) return;
    const colon = node.lastIndexOf(':');
    this.handshaking = true;
    void handshakeProblem(node.slice(0, colon), Number(node.slice(colon + 1)), tls, Math.max(1000, this.timeoutMs)).then((why) => {
      this.handshaking = false;
      if (!why || this.redis.status === 'ready') return;
      this.lastNodeError = `${node}: TLS: ${why}`;
      if (this.lastClusterError) this.lastError = `${this.lastClusterError} (${this.lastNodeError})`;
    });
  }

  private ready(): boolean {
    return this.redis.status === 'ready';
  }

  private failure(why: string): StoreFailure {
    return { failed: true, why };
  }

  private readyWithin(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.redis.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.redis.on('ready', done);
    });
  }
}

function unref(r: Redis): void {
  (r.stream as { unref?: () => void } | undefined)?.unref?.();
}

/** `p`, or a failure once `ms` passed (the command itself is left to its own commandTimeout). */
function deadline(p: Promise<Lookup>, ms: number): Promise<Lookup> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<Lookup>((resolve) => {
    timer = setTimeout(() => resolve({ failed: true, why: `no answer from the cluster within ${ms} ms` }), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Why a TLS handshake with host:port fails ('' if it does not, or says nothing within `ms`). Never throws. */
function handshakeProblem(host: string, port: number, tls: ConnectionOptions, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ ...tls, host, port });
    const done = (why: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(''), ms);
    timer.unref();
    s.unref();
    s.once('secureConnect', () => done(''));
    s.once('error', (err: NodeJS.ErrnoException) => done(`${err.message}${err.code && !err.message.includes(err.code) ? ` (${err.code})` : ''}`));
  });
}
