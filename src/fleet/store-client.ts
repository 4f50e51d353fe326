// Overview — one connection to the fleet store per worker thread and store URL (ioredis), bounded in time on
// every path: the store is an accelerator, never a dependency.
// - A lookup waits at most `timeoutMs` (config fleet.timeout) for its answer; a store that is down, slow or not
//   reachable costs each lookup at most that, and only until the connection is known to be gone: then commands
//   fail at once (no offline queue) until it is back (ioredis reconnects in the background, backing off).
// - The first lookup of a fresh client waits for the connection to come up, within the same bound (a worker starts
//   its client at its first file: without this wait, the first file of every worker would miss).
// - Publishing never holds a file: the caller does not await it; its result only feeds the counters.
// Must not: throw to the caller for a store problem (every failure is a StoreFailure value), queue without bound,
// or keep a worker alive by itself.
import { Redis } from 'ioredis';

export interface StoreFailure {
  failed: true;
  why: string;
}

export type Lookup = { failed: false; values: (Buffer | null)[] } | StoreFailure;

const clients = new Map<string, StoreClient>();
const PUBLISH_FIRST_WAIT_MS = 5_000;

/** The worker's client for this URL and timeout, made at first use. */
export function storeClient(url: string, timeoutMs: number): StoreClient {
  const id = `${timeoutMs}\0${url}`;
  let c = clients.get(id);
  if (!c) {
    c = new StoreClient(url, timeoutMs);
    clients.set(id, c);
  }
  return c;
}

export class StoreClient {
  private readonly redis: Redis;
  private everReady = false;
  private lastError = '';
  private firstWait?: Promise<void>;
  private firstPublishWait?: Promise<void>;

  constructor(
    url: string,
    private readonly timeoutMs: number,
  ) {
    this.redis = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: timeoutMs,
      connectTimeout: Math.max(1000, timeoutMs),
      // Reconnect in the background, backing off to 2 s: lookups meanwhile fail at once (no offline queue).
      retryStrategy: (times) => Math.min(50 * times, 2000),
      enableReadyCheck: false,
      connectionName: 'blessd',
      // The lookups of a judge batch are issued in one tick: one write to the socket for all of them.
      enableAutoPipelining: true,
    });
    this.redis.on('ready', () => (this.everReady = true));
    this.redis.on('error', (err: Error) => (this.lastError = err.message)); // each command reports its own failure
    // The socket must not keep a worker thread alive (Piscina ends idle workers by terminate anyway).
    this.redis.on('connect', () => (this.redis.stream as { unref?: () => void } | undefined)?.unref?.());
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
      const values = await this.redis.mgetBuffer(...keys);
      return { failed: false, values };
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
