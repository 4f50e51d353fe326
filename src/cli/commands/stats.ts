// blessctl stats: every counter of the running daemon (gate, verdicts, scans, pool, socket).
import { out, type Command } from '../command.js';
import { SOCKET_USAGE, socketArgs, withDaemon } from '../control.js';

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
    const parsed = socketArgs(args, usage, { count: 0, expected: 'stats takes no arguments' });
    if (!parsed) return 0;
    const { values } = parsed;
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
