// blessctl stats: every counter of the running daemon (gate, verdicts, scans, pool, socket).
import { parseArgs } from 'node:util';
import { out, parseOrUsage, UsageError, type Command } from '../command.js';
import { SOCKET_OPTIONS, SOCKET_USAGE, withDaemon } from '../control.js';

const usage = `Usage: blessctl stats [--json] [--socket PATH]

Every counter of the running daemon. Without --json, one "key value" line per number (dotted keys), for grep
and for monitoring agents that read that form.

${SOCKET_USAGE}`;

function flatten(prefix: string, v: unknown, lines: string[]) {
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flatten(prefix ? `${prefix}.${k}` : k, x, lines);
  } else lines.push(`${prefix} ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
}

export const statsCommand: Command = {
  name: 'stats',
  summary: 'stats [--json]              every counter of the running daemon',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() => parseArgs({ args, options: SOCKET_OPTIONS, allowPositionals: true, strict: true }));
    if (values.help) {
      out(usage);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError('stats takes no arguments');
    const { stats } = (await withDaemon(values, (c) => c.request('stats'))) as { stats: unknown };
    if (values.json) out(JSON.stringify(stats));
    else {
      const lines: string[] = [];
      flatten('', stats, lines);
      out(lines.join('\n'));
    }
    return 0;
  },
};
