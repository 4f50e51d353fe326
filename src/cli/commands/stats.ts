// blessctl stats: every counter of the running daemon (gate, verdicts, scans, pool, socket); with --by, who costs
// what (per executable, path or uid).
import { parseArgs } from 'node:util';
import { out, parseOrUsage, printable, table, UsageError, type Command } from '../command.js';
import { latencyPercentile } from '../../gate/latency.js';
import type { CostRow } from '../../daemon/costs.js';
import { scanPercentile, type ScanHistogram } from '../../metrics/scan-durations.js';
import { SOCKET_OPTIONS, SOCKET_USAGE, withDaemon } from '../control.js';

const usage = `Usage: blessctl stats [--json] [--socket PATH]
       blessctl stats --by process|path|uid [--top N] [--sort KEY] [--json] [--socket PATH]

Every counter of the running daemon. Without --json, one "key value" line per number (dotted keys), for grep
and for monitoring agents that read that form; latency histograms as their count and p50/p90/p99/p99.9 (µs), scan durations as count, sum and p50/p90/p99
(seconds, a bucket's upper bound).

The second form shows who costs what since the daemon started (root only): per executable, path or uid, the files
judged, the scans and their time, the accesses that waited and for how long, and denials; the top N rows (10) by
--sort: scanMs (default for paths), waitedMs (default otherwise), scans, judged, waits or denied.

  --by AXIS               process (the executable), path or uid
  --top N                 rows to show (1 to 1000, default 10)
  --sort KEY              scanMs, waitedMs, scans, judged, waits or denied
${SOCKET_USAGE}`;

function flatten(prefix: string, v: unknown, lines: string[]) {
  if (prefix.endsWith('latencyUs') && Array.isArray(v)) {
    // An HDR histogram of 240 buckets: people and agents want its percentiles, not its buckets (--json has them).
    const total = (v as number[]).reduce((a, b) => a + b, 0);
    lines.push(`${prefix}.count ${total}`);
    for (const p of [50, 90, 99, 99.9]) lines.push(`${prefix}.p${String(p).replace('.', '_')} ${total ? latencyPercentile(v as number[], p / 100) : 0}`);
    return;
  }
  if (isScanHistogram(v)) {
    // Scan durations (src/metrics/scan-durations.ts): count, sum and percentiles in seconds, not 18 buckets.
    lines.push(`${prefix}.count ${v.count}`, `${prefix}.sumSeconds ${v.sumSeconds}`);
    for (const p of [50, 90, 99]) lines.push(`${prefix}.p${p}Seconds ${scanPercentile(v, p / 100)}`);
    return;
  }
  if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flatten(prefix ? `${prefix}.${k}` : k, x, lines);
  } else lines.push(`${prefix} ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
}

function isScanHistogram(v: unknown): v is ScanHistogram {
  return v !== null && typeof v === 'object' && Array.isArray((v as ScanHistogram).counts) && typeof (v as ScanHistogram).sumSeconds === 'number';
}

const SORTS = ['scanMs', 'waitedMs', 'scans', 'judged', 'waits', 'denied'] as const;

function costTable(by: string, rows: CostRow[]): string {
  const head = by === 'process' ? 'EXECUTABLE' : by === 'uid' ? 'UID' : 'PATH';
  const ms = (x: number) => (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${x.toFixed(1)} ms`);
  return table(
    ['JUDGED', 'SCANS', 'SCAN TIME', 'WAITS', 'WAITED', 'DENIED', head],
    rows.map((r) => [String(r.judged), String(r.scans), ms(r.scanMs), String(r.waits), ms(r.waitedMs), String(r.denied), printable(r.key)]),
  );
}

export const statsCommand: Command = {
  name: 'stats',
  summary: 'stats [--by process|path|uid] every counter; or who costs what',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() =>
      parseArgs({ args, options: { ...SOCKET_OPTIONS, by: { type: 'string' }, top: { type: 'string' }, sort: { type: 'string' } }, allowPositionals: true, strict: true }),
    );
    if (values.help) {
      out(usage);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError('stats takes no arguments');
    if (values.by !== undefined) {
      if (!['process', 'path', 'uid'].includes(values.by)) throw new UsageError('--by must be process, path or uid');
      const top = values.top === undefined ? 10 : Number(values.top);
      if (!Number.isInteger(top) || top < 1 || top > 1000) throw new UsageError('--top must be an integer from 1 to 1000');
      const sort = values.sort ?? (values.by === 'path' ? 'scanMs' : 'waitedMs');
      if (!(SORTS as readonly string[]).includes(sort)) throw new UsageError(`--sort must be one of ${SORTS.join(', ')}`);
      const r = (await withDaemon(values, (c) => c.request('costs', { by: values.by, top, sort }))) as { rows: CostRow[] };
      out(values.json ? JSON.stringify(r.rows) : costTable(values.by, r.rows));
      return 0;
    }
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
