// blessctl top: a live view of the running daemon, one sample per interval: events per second, the share the
// native thread answered alone (the fast path), scans in flight, the p99 wait of the events JS answered, and the
// processes (executables) that caused the most cold work — accesses that had to wait for a judgement — and denials
// in that interval (the daemon's cost table, `stats --by process`, sampled and differenced: root only).
import { parseArgs } from 'node:util';
import { basename } from 'node:path';
import type { CostRow } from '../../daemon/costs.js';
import { out, parseOrUsage, printable, table, UsageError, type Command } from '../command.js';
import { SOCKET_OPTIONS, SOCKET_USAGE, withDaemon } from '../control.js';
import { parseDuration } from '../../config/units.js';
import { latencyDelta, latencyPercentile } from '../../gate/latency.js';

const usage = `Usage: blessctl top [--interval 1s] [--count N] [--top N] [--json] [--socket PATH]

Samples the daemon's counters every interval and shows the rates of the last one: events/s, fast-path share
(answered on the native thread without waking JavaScript), verdicts/s, scans in flight (pool and out-of-process
scanners), waiting permission events, and the p99 wait of the events JS answered; then the processes (by
executable) whose accesses waited for a judgement most in that interval — how many, how long, how many were
denied (root only: others see the counters alone). On a terminal the screen is redrawn; otherwise (or with
--json) one line per sample. Ctrl-C ends it.

  --interval DURATION     sampling interval: 1s (default), 500ms, 2m, or milliseconds; at least 100ms
  --count N               stop after N samples
  --top N                 processes to show (0 to 100, default 5)
${SOCKET_USAGE}`;

interface Sample {
  at: number;
  stats: any;
  /** The cost table by process (cumulative), or null when the daemon does not tell us (not root). */
  processes: CostRow[] | null;
}

/** One process's share of the interval: accesses that waited for a judgement, their wait, and the denied ones. */
export interface TopProcess {
  exe: string;
  waits: number;
  waitedMs: number;
  denied: number;
}

/** Processes by their cold work in the interval (waits, then denials, then time waited), the top `n`. */
export function topProcesses(a: CostRow[], b: CostRow[], n: number): TopProcess[] {
  const before = new Map(a.map((r) => [r.key, r]));
  const rows: TopProcess[] = [];
  for (const r of b) {
    const p = before.get(r.key);
    // A row the daemon's bounded table dropped and made again counts from zero: never negative.
    const d = (k: 'waits' | 'waitedMs' | 'denied') => Math.max(0, r[k] - (p && p[k] <= r[k] ? p[k] : 0));
    const row = { exe: r.key, waits: d('waits'), waitedMs: d('waitedMs'), denied: d('denied') };
    if (row.waits > 0 || row.denied > 0) rows.push(row);
  }
  return rows.sort((x, y) => y.waits - x.waits || y.denied - x.denied || y.waitedMs - x.waitedMs || x.exe.localeCompare(y.exe)).slice(0, n);
}

export interface TopRow {
  eventsPerSec: number;
  fastPathShare: number | null;
  verdictsPerSec: number;
  scansInFlight: number;
  scansQueued: number;
  pending: number;
  machines: number;
  p99WaitUs: number | null;
  /** Null when the daemon does not show who (not root). */
  processes?: TopProcess[] | null;
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
const fastOf = (g: any) => g.fastOwn + g.fastExempt + g.fastAllowed + g.fastDenied + g.fastWriter;

export function topRow(a: Sample, b: Sample): TopRow {
  const dt = Math.max(1, b.at - a.at) / 1000;
  const ga = a.stats.gate;
  const gb = b.stats.gate;
  const fast = fastOf(gb) - fastOf(ga);
  const forwarded = gb.forwarded - ga.forwarded;
  const hist = latencyDelta(gb.latencyUs, ga.latencyUs);
  const remote = (b.stats.remote ?? []) as { inFlight: number; queued: number }[];
  return {
    eventsPerSec: (sum(gb.events) - sum(ga.events)) / dt,
    fastPathShare: fast + forwarded === 0 ? null : fast / (fast + forwarded),
    verdictsPerSec: (b.stats.verdicts.allow + b.stats.verdicts.deny - a.stats.verdicts.allow - a.stats.verdicts.deny) / dt,
    scansInFlight: b.stats.pool.running + remote.reduce((x, r) => x + r.inFlight, 0),
    scansQueued: b.stats.pool.queued + remote.reduce((x, r) => x + r.queued, 0),
    pending: gb.pendingNow,
    machines: b.stats.machines,
    p99WaitUs: hist.some((n: number) => n > 0) ? latencyPercentile(hist, 0.99) : null,
  };
}

const HEADER = 'EVENTS/S  FAST-PATH  VERDICTS/S  SCANS  QUEUED  PENDING  MACHINES  P99 WAIT';
const HEADER_WHO = `${HEADER}  TOP PROCESSES (w: waited, d: denied)`;
function text(r: TopRow): string {
  const wait = r.p99WaitUs === null ? '-' : r.p99WaitUs >= 1000 ? `≤${(r.p99WaitUs / 1000).toFixed(r.p99WaitUs >= 10_000 ? 0 : 1)} ms` : `≤${r.p99WaitUs} µs`;
  const share = r.fastPathShare === null ? '-' : `${(r.fastPathShare * 100).toFixed(1)}%`;
  return [r.eventsPerSec.toFixed(0).padStart(8), share.padStart(9), r.verdictsPerSec.toFixed(0).padStart(10), String(r.scansInFlight).padStart(5), String(r.scansQueued).padStart(6), String(r.pending).padStart(7), String(r.machines).padStart(8), wait.padStart(9)].join('  ');
}

function processTable(rows: TopProcess[]): string {
  if (rows.length === 0) return '(no process waited for a judgement)';
  const ms = (x: number) => (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${x.toFixed(1)} ms`);
  return table(['WAITS', 'WAITED', 'DENIED', 'EXECUTABLE'], rows.map((r) => [String(r.waits), ms(r.waitedMs), String(r.denied), printable(r.exe)]));
}

/** The processes in one line: `cat 3w 1d, head 2w` (the executable's base name, waits and denials). */
function processLine(rows: TopProcess[] | null | undefined): string {
  if (!rows) return '';
  return rows.map((r) => `${printable(basename(r.exe))} ${r.waits}w${r.denied ? ` ${r.denied}d` : ''}`).join(', ') || '-';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const topCommand: Command = {
  name: 'top',
  summary: 'top                         live view: events/s, fast path, scans, p99 wait, top processes',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() =>
      parseArgs({ args, options: { ...SOCKET_OPTIONS, interval: { type: 'string' }, count: { type: 'string' }, top: { type: 'string' } }, allowPositionals: true, strict: true }),
    );
    if (values.help) {
      out(usage);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError('top takes no arguments');
    // The config's duration syntax: "1s", "500ms", "1m", or a plain number of milliseconds.
    const interval = values.interval === undefined ? 1000 : parseDuration(/^\d+$/.test(values.interval) ? Number(values.interval) : values.interval);
    if (typeof interval === 'string') throw new UsageError(`--interval ${interval}`);
    if (interval < 100 || interval > 3_600_000) throw new UsageError('--interval must be between 100ms and 1h');
    const count = values.count === undefined ? Infinity : Number(values.count);
    if (!(count === Infinity || (Number.isInteger(count) && count > 0))) throw new UsageError('--count must be a positive integer');
    const topN = values.top === undefined ? 5 : Number(values.top);
    if (!Number.isInteger(topN) || topN < 0 || topN > 100) throw new UsageError('--top must be an integer from 0 to 100');
    const live = process.stdout.isTTY === true && !values.json;
    let stopped = false;
    process.once('SIGINT', () => (stopped = true));
    await withDaemon(values, async (c) => {
      const sample = async (): Promise<Sample> => {
        const { stats } = (await c.request('stats')) as { stats: any };
        const status = (await c.request('status')) as any;
        let processes: CostRow[] | null = null;
        if (topN > 0 && who) {
          try {
            processes = ((await c.request('costs', { by: 'process', top: 1000, sort: 'waits' })) as { rows: CostRow[] }).rows;
          } catch {
            who = false; // not root: the daemon shows counters, not who
          }
        }
        return { at: Date.now(), stats: { ...stats, remote: status.queues.scanners }, processes };
      };
      let who = true;
      let prev = await sample();
      if (!live && !values.json) out(who && topN > 0 ? HEADER_WHO : HEADER);
      for (let n = 0; n < count && !stopped; n++) {
        await sleep(interval);
        const next = await sample();
        const row: TopRow = topRow(prev, next);
        if (topN > 0) row.processes = prev.processes && next.processes ? topProcesses(prev.processes, next.processes, topN) : null;
        prev = next;
        if (values.json) out(JSON.stringify(row));
        else if (live) {
          const procs = row.processes ? `\n\n${processTable(row.processes)}` : '';
          process.stdout.write(`\x1b[H\x1b[2Jblessd top — every ${interval} ms, Ctrl-C to end\n\n${HEADER}\n${text(row)}${procs}\n`);
        } else out(row.processes === undefined ? text(row) : `${text(row)}  ${processLine(row.processes)}`);
      }
    });
    return 0;
  },
};
