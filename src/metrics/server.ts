// The metrics endpoint: GET /metrics over HTTP on a loopback address or a unix socket (config `metrics.listen`).
// Off by default. It serves counters only; it can neither change the daemon nor learn file content.
import { createServer, type Server } from 'node:http';
import { chmodSync, rmSync } from 'node:fs';
import type { Registry } from 'prom-client';
import type { Logger } from '../daemon/logger.js';
import type { MetricsListen } from '../config/types.js';

export class MetricsServer {
  private constructor(
    private readonly server: Server,
    private readonly listen: MetricsListen,
  ) {}

  static async start(listen: MetricsListen, register: Registry, log: Logger): Promise<MetricsServer> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('blessd serves /metrics only\n');
        return;
      }
      register.metrics().then(
        (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
        (err: Error) => {
          log.warn({ err: err.message }, 'metrics scrape failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
        },
      );
    });
    // A scraper that never reads must not hold sockets for ever.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (listen.kind === 'unix') {
        rmSync(listen.path, { force: true });
        server.listen(listen.path, () => resolve());
      } else server.listen(listen.port, listen.host, () => resolve());
    });
    if (listen.kind === 'unix') chmodSync(listen.path, 0o660);
    const where = listen.kind === 'unix' ? listen.path : `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${(server.address() as { port: number }).port}/metrics`;
    log.info({ metrics: where }, 'serving metrics');
    return new MetricsServer(server, listen);
  }

  /** The TCP port actually bound (listen port 0 picks a free one), or undefined on a unix socket. */
  get port(): number | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.listen.kind === 'unix') rmSync(this.listen.path, { force: true });
  }
}
