// What the socket subcommands of blessctl share: the --socket option, connecting with errors that say what to do,
// and small formatters.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { out, parseOrUsage, UsageError } from './command.js';
import { ClientError, ControlClient, DEFAULT_SOCKET } from '../notify/client.js';

export const SOCKET_OPTIONS = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export interface SocketArgs {
  values: { socket?: string; json?: boolean; help?: boolean };
  positionals: string[];
}

/**
 * The arguments of a subcommand that only talks to the daemon: --socket, --json, --help and `positionals` words.
 * Returns undefined when --help was asked for (the usage is printed).
 */
export function socketArgs(args: string[], usage: string, positionals: { count: number; expected: string }): SocketArgs | undefined {
  const parsed = parseOrUsage(() => parseArgs({ args, options: SOCKET_OPTIONS, allowPositionals: true, strict: true }));
  if (parsed.values.help) {
    out(usage);
    return undefined;
  }
  if (parsed.positionals.length !== positionals.count) throw new UsageError(positionals.expected);
  return parsed;
}

export const SOCKET_USAGE = `  --socket PATH           the daemon's control socket (default $BLESSD_SOCKET or ${DEFAULT_SOCKET})
  --json                  machine-readable output
  -h, --help              this text`;

export function socketPath(values: { socket?: string }): string {
  return values.socket ?? process.env['BLESSD_SOCKET'] ?? DEFAULT_SOCKET;
}

/** Connect, or throw an error that says what is wrong in the operator's terms. */
export async function connectDaemon(path: string): Promise<ControlClient> {
  try {
    return await ControlClient.connect(path);
  } catch (err) {
    throw new Error(explainConnectError(path, err));
  }
}

export function explainConnectError(path: string, err: unknown): string {
  const code = (err as ClientError).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED') return `no daemon listens on ${path} (is blessd running? --socket PATH)`;
  if (code === 'EACCES' || code === 'EPERM') return `permission denied on ${path}: only root and the socket's group (config socket.group) may connect`;
  return (err as Error).message;
}

/** Run `fn` with a connected client and close it afterwards. */
export async function withDaemon<T>(values: { socket?: string }, fn: (c: ControlClient) => Promise<T>): Promise<T> {
  const c = await connectDaemon(socketPath(values));
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${(ms / 1000).toFixed(1)} s`;
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d${h}h${m}m` : h > 0 ? `${h}h${m}m` : `${m}m${s % 60}s`;
}

