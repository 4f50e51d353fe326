// Shared by the bench scripts: a printed table, a JSON file per question, and the statistics every table uses.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const RESULTS_DIR = join(process.cwd(), 'bench', 'results');

const printed: string[] = [];

/** Print a table; it is also kept for the markdown copy that writeResult() writes next to the JSON. */
export function printTable(title: string, rows: Record<string, string | number>[]) {
  printed.push(`**${title}**\n\n${markdownTable(rows)}\n`);
  console.log(`\n${title}`);
  if (rows.length === 0) return;
  const cols = Object.keys(rows[0]);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells: string[]) => cells.map((s, i) => s.padEnd(width[i])).join('  ');
  console.log(line(cols));
  console.log(line(width.map((w) => '-'.repeat(w))));
  for (const r of rows) console.log(line(cols.map((c) => String(r[c]))));
}

/** The same table as GitHub markdown, for docs/bench.md. */
export function markdownTable(rows: Record<string, string | number>[]): string {
  if (rows.length === 0) return '';
  const cols = Object.keys(rows[0]);
  return [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${cols.map((c) => String(r[c])).join(' | ')} |`)].join('\n');
}

/** A line of explanation printed under the tables, and kept for the markdown copy. */
export function note(text: string) {
  printed.push(text + '\n');
  console.log(text);
}

/** bench/results/<name>.json with the data, and <name>.md with every table and note printed so far. */
export function writeResult(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, `${name}.md`), `### bench/${name} (${new Date().toISOString().slice(0, 16)}Z)\n\n${printed.join('\n')}`);
  const file = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(file, JSON.stringify({ when: new Date().toISOString(), ...(data as object) }, null, 2) + '\n');
  return file;
}

export function writeText(name: string, text: string): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, name);
  writeFileSync(file, text);
  return file;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Exact percentile (nearest rank) of an ascending array. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank];
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Exact percentiles from all samples (no histogram buckets: every sample is kept and sorted). */
export function summarize(samples: ArrayLike<number>): Summary {
  const s = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, p50: percentile(s, 0.5), p99: percentile(s, 0.99), p999: percentile(s, 0.999), max: s[s.length - 1] ?? NaN, mean: s.length ? sum / s.length : NaN };
}

/**
 * The percentile distribution in HdrHistogram's text format (the .hgrm that HdrHistogram's plotter reads), computed
 * exactly from the samples: value, percentile, total count, 1/(1-percentile), at the usual halving steps.
 */
export function hgrm(samples: ArrayLike<number>, unit = 'µs'): string {
  const s = Float64Array.from(samples).sort();
  const lines = [`       Value     Percentile TotalCount 1/(1-Percentile)   (${unit})`, ''];
  const qs: number[] = [];
  for (let step = 0; step < 20; step++) {
    const from = step === 0 ? 0 : 1 - 1 / 2 ** step;
    const to = 1 - 1 / 2 ** (step + 1);
    for (let k = 0; k < 5; k++) qs.push(from + ((to - from) * k) / 5);
  }
  qs.push(1);
  let last = -1;
  for (const q of qs) {
    const count = Math.max(1, Math.ceil(q * s.length));
    if (count === last && q !== 1) continue;
    last = count;
    const inv = q >= 1 ? '' : (1 / (1 - q)).toFixed(2).padStart(14);
    lines.push(`${percentile(s, q === 0 ? 1 / s.length : q).toFixed(3).padStart(12)} ${q.toFixed(12)} ${String(count).padStart(10)} ${inv}`);
  }
  lines.push(`#[Mean    = ${(s.reduce((a, b) => a + b, 0) / s.length).toFixed(3)}, Max = ${s[s.length - 1]?.toFixed(3)}]`);
  lines.push(`#[Total count    = ${s.length}]`);
  return lines.join('\n') + '\n';
}

export function ratio(x: number, base: number): string {
  if (!(base > 0) || !Number.isFinite(x)) return 'n/a';
  const r = x / base;
  return `${r >= 100 ? r.toFixed(0) : r >= 0.1 || r === 0 ? r.toFixed(2) : r.toPrecision(2)}×`;
}
export const us = (x: number) => (!Number.isFinite(x) ? 'n/a' : x >= 10_000 ? `${(x / 1000).toFixed(1)} ms` : x >= 100 ? x.toFixed(0) : x.toFixed(2));
export const count = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)} M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)} k` : String(Math.round(x)));

/** An integer from the environment, with a default; a bad value is an error naming the variable. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw.replace(/_/g, ''));
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name}: must be a non-negative integer (got "${raw}")`);
  return v;
}

/** A comma-separated list of integers from the environment. */
export function envInts(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  return raw.split(',').map((p) => {
    const v = Number(p.trim());
    if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`${name}: must be a comma-separated list of positive integers (got "${raw}")`);
    return v;
  });
}

/** bench:full sets BENCH_FULL=1: larger defaults everywhere. */
export const FULL = process.env.BENCH_FULL === '1';

export function requireRoot(name: string) {
  if (process.getuid?.() !== 0) throw new Error(`${name} needs root (fanotify, loop mounts)`);
}

/** A bench script's entry: any failure prints and exits 1 (the script's own finally blocks have cleaned up). */
export function runMain(main: () => Promise<void>): void {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
