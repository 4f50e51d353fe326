// What a blessctl subcommand is, and the pieces every subcommand shares: the usage error, the common options
// (--key, --namespace, --state-dir) and output helpers. One module per subcommand lives in commands/.
import { BlessdError } from '../errors.js';
import type { ParseArgsConfig } from 'node:util';
import { loadConfig } from '../config/index.js';
import { isTagNamespace, type TagNamespace } from '../tags/names.js';

export interface Command {
  /** The first word after `blessctl`. */
  name: string;
  /** One line for `blessctl --help`. */
  summary: string;
  /** The full usage text of this subcommand. */
  usage: string;
  /** Returns the exit code. Throws UsageError for bad arguments (exit 2), anything else for runtime errors (exit 1). */
  run(args: string[]): Promise<number>;
}

/** Bad arguments: blessctl prints the message and the subcommand's usage, and exits 2. */
export class UsageError extends BlessdError<'USAGE'> {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export const DEFAULT_STATE_DIR = '/var/lib/blessd';
export const DEFAULT_KEY = '/var/lib/blessd/tag.key';

export const COMMON_OPTIONS = {
  config: { type: 'string', short: 'c' },
  key: { type: 'string' },
  namespace: { type: 'string' },
  'state-dir': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const COMMON_USAGE = `Options:
  -c, --config FILE       take key, namespace and state directory from the daemon's config.yaml
  --key FILE              MAC key file (default ${DEFAULT_KEY}, or the config's tags.keyFile)
  --namespace NS          trusted | user (default trusted)
  --state-dir DIR         state directory with generations.json (default ${DEFAULT_STATE_DIR})
  --json                  machine-readable output
  -h, --help              this text`;

export interface Common {
  key: string;
  namespace: TagNamespace;
  stateDir: string;
  json: boolean;
}

/** Explicit options first, then the daemon's config (--config), then the defaults. */
export function commonOf(values: { config?: string; key?: string; namespace?: string; 'state-dir'?: string; json?: boolean }): Common {
  // A daemon with its own stateDir keeps its key there: without --config its valid tags would look forged (bad-mac).
  const config = values.config === undefined ? undefined : loadConfig(values.config);
  const namespace = values.namespace ?? config?.tags.namespace ?? 'trusted';
  if (!isTagNamespace(namespace)) throw new UsageError(`--namespace must be trusted or user, got ${JSON.stringify(namespace)}`);
  return {
    key: values.key ?? config?.tags.keyFile ?? DEFAULT_KEY,
    namespace,
    stateDir: values['state-dir'] ?? config?.stateDir ?? DEFAULT_STATE_DIR,
    json: values.json ?? false,
  };
}

/** node:util parseArgs errors are usage errors. */
export function parseOrUsage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

/** Text from files and tags (names, reasons) may hold control characters: never let them reach a terminal raw. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

/** Left-aligned columns, two spaces apart; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}
