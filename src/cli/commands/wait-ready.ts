// blessctl wait-ready: wait until the daemon answers on its socket (for boot scripts and systemd ExecStartPost).
import { parseArgs } from 'node:util';
import { parseDuration } from '../../config/units.js';
import { ControlClient } from '../../notify/client.js';
import { out, parseOrUsage, UsageError, type Command } from '../command.js';
import { explainConnectError, SOCKET_OPTIONS, SOCKET_USAGE, socketPath } from '../control.js';

const usage = `Usage: blessctl wait-ready [--timeout 30s] [--socket PATH]

Waits until the daemon listens on its socket and answers (it opens the socket only once its guards are in
place). Exit 0 when ready, 1 after the timeout.

  --timeout DURATION      how long to wait (default 30s; 500ms, 1m...)
${SOCKET_USAGE}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const waitReadyCommand: Command = {
  name: 'wait-ready',
  summary: 'wait-ready [--timeout 30s]  wait until the daemon answers',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() =>
      parseArgs({ args, options: { ...SOCKET_OPTIONS, timeout: { type: 'string' } }, allowPositionals: true, strict: true }),
    );
    if (values.help) {
      out(usage);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError('wait-ready takes no arguments');
    let timeoutMs = 30_000;
    if (values.timeout !== undefined) {
      const d = parseDuration(values.timeout);
      if (typeof d === 'string') throw new UsageError(`--timeout ${d}`);
      timeoutMs = d;
    }
    const path = socketPath(values);
    const until = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      try {
        const c = await ControlClient.connect(path, { timeoutMs: Math.max(100, Math.min(2000, until - Date.now())) });
        try {
          const hello = await c.request('hello', {}, { timeoutMs: Math.max(100, until - Date.now()) });
          out(values.json ? JSON.stringify({ ready: true, pid: hello['pid'] }) : `ready: blessd pid ${hello['pid']} on ${path}`);
          return 0;
        } finally {
          c.close();
        }
      } catch (err) {
        last = err;
      }
      if (Date.now() >= until) break;
      await sleep(Math.min(100, Math.max(0, until - Date.now())));
    }
    process.stderr.write(`blessctl wait-ready: not ready after ${timeoutMs} ms: ${explainConnectError(path, last)}\n`);
    return 1;
  },
};
