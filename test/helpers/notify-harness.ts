// The control socket on top of the daemon harness, and long-running child programs read line by line (subscribers,
// scanners). Everything is stopped on teardown; every wait is bounded.
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Config } from '../../src/config/types.js';
import { makeLogger } from '../../src/daemon/logger.js';
import { ControlClient } from '../../src/notify/client.js';
import type { Limits } from '../../src/notify/protocol.js';
import { NotifyServer } from '../../src/notify/server.js';
import { REPO, withDaemon, type DaemonHarness } from './daemon-harness.js';
import type { ScratchKind } from './scratch.js';

export const PYTHON = '/usr/bin/python3'; // not a shim under /root: also runnable as nobody
export const EXAMPLES = join(REPO, 'examples');

export interface NotifyHarness extends DaemonHarness {
  server: NotifyServer;
  socket: string;
  client(): Promise<ControlClient>;
}

export async function withNotify(
  t: ExecutionContext,
  fs: ScratchKind,
  opts: Parameters<typeof withDaemon>[2] & {
    limits?: Partial<Limits>;
    socket?: Partial<Config['socket']>;
    /** Verdict notices built only while a subscriber hears them, as `blessd run` wires it (the native lane stays on). */
    asBlessd?: boolean;
  } = {},
): Promise<NotifyHarness> {
  const h = await withDaemon(t, fs, opts);
  const server = await NotifyServer.start({
    control: h.daemon.control(),
    notices: h.daemon,
    socket: { ...h.config.socket, ...opts.socket },
    log: makeLogger(h.config.log.level),
    reload: () => h.daemon.reload(h.config),
    limits: opts.limits,
  });
  if (opts.asBlessd) h.daemon.verdictsHeardWhen(() => server.hearsVerdicts());
  const clients: ControlClient[] = [];
  // Registered after withDaemon's: ava runs teardowns last-in first-out, so the server goes before the daemon.
  t.teardown(async () => {
    for (const c of clients) c.close();
    await server.close();
  });
  return Object.assign(h, {
    server,
    socket: h.config.socket.path,
    async client() {
      const c = await ControlClient.connect(h.config.socket.path);
      clients.push(c);
      return c;
    },
  });
}

export interface LineChild {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** The first line (from the start) matching, or a rejection after timeoutMs. */
  waitFor(match: (line: string) => boolean, timeoutMs?: number, what?: string): Promise<string>;
  kill(): void;
}

/** A long-running child whose stdout is collected line by line. Killed at teardown, and after 120 s anyway. */
export function lineChild(t: ExecutionContext, cmd: string, args: string[], opts: { uid?: number; gid?: number } = {}): LineChild {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  const lines: string[] = [];
  let partial = '';
  let err = '';
  const watchers = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const w of [...watchers]) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.on('error', (e) => (err += String(e)));
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  child.on('exit', () => {
    clearTimeout(killer);
    for (const w of [...watchers]) w();
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  t.teardown(kill);
  return {
    child,
    lines,
    stderr: () => err,
    kill,
    waitFor(match, timeoutMs = 10_000, what = 'a matching line') {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(match);
          if (hit !== undefined) return finish(() => resolve(hit));
          if (child.exitCode !== null || child.signalCode !== null) {
            finish(() => reject(new Error(`${cmd} exited (${child.exitCode ?? child.signalCode}) before ${what}; stderr: ${err}; stdout: ${lines.join('\n')}`)));
          }
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} from ${cmd} within ${timeoutMs} ms; stderr: ${err}; stdout: ${lines.slice(-5).join('\n')}`))), timeoutMs);
        const finish = (f: () => void) => {
          clearTimeout(timer);
          watchers.delete(check);
          f();
        };
        watchers.add(check);
        check();
      });
    },
  };
}

/** Percentile of a list (nearest rank). */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
