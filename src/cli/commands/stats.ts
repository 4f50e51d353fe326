// blessctl stats: every counter of the running daemon (gate, verdicts, scans, pool, socket).
import { out, type Command } from '../command.js';
import { latencyPercentile } from '../../gate/latency.js';
import { SOCKET_USAGE, socketArgs, withDaemon } from '../control.js';

const usage = `Usage: blessctl stats [--json] [--socket PATH]

Every counter of the running daemon. Without --json, one "key value" line per number (dotted keys), for grep
and for monitoring agents that read that form; latency histograms as their count and p50/p90/p99/p99.9 (µs).

${SOCKET_USAGE}`;

function flatten(prefix: string, v: unknown, lines: string[]) {
  if (prefix.endsWith('latencyUs') && Array.isArray(v)) {
    // An HDR histogram of 240 buckets: people and agents want its percentiles, not its buckets (--json has them).
    const total = (v as number[]).reduce((a, b) => a + b, 0);
    lines.push(`${prefix}.count ${total}`);
    for (const p of [50, 90, 99, 99.9]) lines.push(`${prefix}.p${String(p).replace('.', '_')} ${total ? latencyPercentile(v as number[], p / 100) : 0}`);
    return;
  }
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
