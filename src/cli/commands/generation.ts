// blessctl generation bump SCANNER: make every existing tag of SCANNER stale, without touching a file.
// A running daemon does it (so it also forgets the verdicts it holds in memory and in the kernel); with no daemon
// on the socket, or with an explicit --state-dir, generations.json is edited directly (a daemon picks it up at
// its next start, reload or bump).
import { parseArgs } from 'node:util';
import { ControlClient } from '../../notify/client.js';
import { bumpGeneration } from '../../tags/generation.js';
import { isScannerName } from '../../tags/names.js';
import { COMMON_OPTIONS, COMMON_USAGE, commonOf, out, parseOrUsage, UsageError, type Command } from '../command.js';

const usage = `Usage: blessctl generation bump SCANNER [--state-dir DIR] [--json]

Increments SCANNER's bump counter in <state-dir>/generations.json. Tags carry "<actor generation>#<counter>":
every tag of SCANNER written before is stale-generation from now on, and the file is rescanned at its next use.
Without --state-dir, a daemon that answers on the socket does the bump (in its own state directory) and forgets
its cached verdicts. With --state-dir, or with no daemon, the file is edited directly.

${COMMON_USAGE}
  --socket PATH           the daemon's control socket (default $BLESSD_SOCKET or /run/blessd.sock)`;

/** The bump through a running daemon, or undefined if none answers on the socket. */
async function bumpThroughDaemon(socket: string, scanner: string): Promise<{ bump: number; inStack: boolean } | undefined> {
  let c: ControlClient;
  try {
    c = await ControlClient.connect(socket, { timeoutMs: 2000 });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return undefined; // no daemon: offline
    throw new Error(`cannot reach the daemon on ${socket}: ${(err as Error).message}`);
  }
  try {
    const r = await c.request('bump', { scanner }, { timeoutMs: 30_000 });
    return { bump: r['bump'] as number, inStack: r['inStack'] as boolean };
  } finally {
    c.close();
  }
}

export const generationCommand: Command = {
  name: 'generation',
  summary: 'generation bump SCANNER     make every tag of SCANNER stale',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() =>
      parseArgs({ args, options: { ...COMMON_OPTIONS, socket: { type: 'string' } }, allowPositionals: true, strict: true }),
    );
    if (values.help) {
      out(usage);
      return 0;
    }
    const common = commonOf(values);
    if (positionals[0] !== 'bump' || positionals.length !== 2) throw new UsageError('expected: generation bump SCANNER');
    const scanner = positionals[1]!;
    if (!isScannerName(scanner)) throw new UsageError(`${JSON.stringify(scanner)} is not a scanner name ([a-z0-9][a-z0-9_-]*)`);
    const live = values['state-dir'] === undefined ? await bumpThroughDaemon(values.socket ?? process.env['BLESSD_SOCKET'] ?? '/run/blessd.sock', scanner) : undefined;
    const bump = live ? live.bump : await bumpGeneration(common.stateDir, scanner);
    const by = live ? 'daemon' : 'offline';
    if (common.json) out(JSON.stringify({ scanner, bump, by, ...(live ? {} : { stateDir: common.stateDir }) }));
    else out(`${scanner}: bump counter is now ${bump}; every older tag of ${scanner} is stale-generation${live ? ' (done by the running daemon, which forgot its cached verdicts)' : ''}`);
    return 0;
  },
};
