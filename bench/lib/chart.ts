// Hand-written SVG charts: grouped bars (ratios against a baseline line at 1×) and lines (a value against load).
// No dependency; the output opens in any browser and renders on GitHub.
import { RESULTS_DIR, writeText } from './report.js';

const COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1'];
const W = 860;
const H = 400;
const M = { top: 48, right: 260, bottom: 56, left: 70 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** 458196 -> 458k, 1.5 -> 1.5, 0 -> 0. */
function short(v: number, digits = 3): string {
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(digits)}M`;
  if (v >= 1e4) return `${+(v / 1e3).toPrecision(digits)}k`;
  if (v >= 100) return v.toFixed(0);
  return String(+v.toPrecision(digits));
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function frame(title: string, yLabel: string, body: string[], legend: string[]): string {
  const items = legend.map(
    (name, i) => `<rect x="${W - M.right + 16}" y="${M.top + i * 22}" width="14" height="14" fill="${COLORS[i % COLORS.length]}"/>` + `<text x="${W - M.right + 36}" y="${M.top + i * 22 + 12}">${esc(name)}</text>`,
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${M.left}" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text transform="translate(16 ${M.top + (H - M.top - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    ...body,
    ...items,
    '</svg>',
  ].join('\n');
}

function yAxis(max: number, fmt: (v: number) => string, log: boolean, min = 1): { y: (v: number) => number; lines: string[] } {
  const plotH = H - M.top - M.bottom;
  const y = log ? (v: number) => M.top + plotH * (1 - Math.log10(Math.max(v, min) / min) / Math.log10(max / min)) : (v: number) => M.top + plotH * (1 - v / max);
  const ticks: number[] = [];
  if (log) for (let t = min; t <= max * 1.0001; t *= 10) ticks.push(t);
  else for (let k = 0; k <= 5; k++) ticks.push((max * k) / 5);
  const lines = ticks.map((t) => `<line x1="${M.left}" x2="${W - M.right}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/><text x="${M.left - 6}" y="${y(t) + 4}" text-anchor="end">${esc(fmt(t))}</text>`);
  lines.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="#333"/>`);
  return { y, lines };
}

export interface BarChart {
  title: string;
  yLabel: string;
  categories: string[];
  series: { name: string; values: number[] }[];
  /** A dashed reference line, e.g. 1 for "same as the baseline". */
  reference?: { value: number; label: string };
  log?: boolean;
}

export function barChart(c: BarChart): string {
  const all = c.series.flatMap((s) => s.values).filter(Number.isFinite);
  const log = c.log ?? false;
  const max = log ? 10 ** Math.ceil(Math.log10(Math.max(...all, 1.0001))) : niceMax(Math.max(...all, c.reference?.value ?? 0) * 1.05);
  const { y, lines } = yAxis(max, (v) => short(v) + (c.reference ? '×' : ''), log);
  const plotW = W - M.left - M.right;
  const groupW = plotW / c.categories.length;
  const barW = (groupW * 0.75) / c.series.length;
  const base = log ? y(1) : y(0);
  const body = [...lines];
  c.categories.forEach((cat, i) => {
    const x0 = M.left + i * groupW + groupW * 0.125;
    body.push(`<text x="${M.left + i * groupW + groupW / 2}" y="${H - M.bottom + 18}" text-anchor="middle">${esc(cat)}</text>`);
    c.series.forEach((s, j) => {
      const v = s.values[i];
      if (!Number.isFinite(v)) return;
      const top = y(v);
      body.push(`<rect x="${x0 + j * barW}" y="${Math.min(top, base)}" width="${barW - 2}" height="${Math.abs(base - top)}" fill="${COLORS[j % COLORS.length]}"/>`);
      body.push(`<text x="${x0 + j * barW + barW / 2 - 1}" y="${Math.min(top, base) - 4}" text-anchor="middle" font-size="10">${short(v, 2)}</text>`);
    });
  });
  if (c.reference) {
    const ry = y(c.reference.value);
    body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${ry}" y2="${ry}" stroke="#000" stroke-dasharray="5,4"/>`);
    body.push(`<text x="${M.left + 4}" y="${ry - 4}" font-size="11">${esc(c.reference.label)}</text>`);
  }
  body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${base}" y2="${base}" stroke="#333"/>`);
  return frame(c.title, c.yLabel, body, c.series.map((s) => s.name));
}

export interface LineChart {
  title: string;
  yLabel: string;
  xLabel: string;
  x: number[];
  series: { name: string; values: number[] }[];
  log?: boolean;
  /** Place points by their x value (a numeric axis with a few ticks) instead of evenly, one label each. */
  numericX?: boolean;
}

export function lineChart(c: LineChart): string {
  const all = c.series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  const log = c.log ?? false;
  const min = log ? 10 ** Math.floor(Math.log10(Math.min(...all))) : 0;
  const max = log ? 10 ** Math.ceil(Math.log10(Math.max(...all) * 1.0001)) : niceMax(Math.max(...all) * 1.05);
  const { y, lines } = yAxis(max, (v) => short(v), log, log ? min : 1);
  const plotW = W - M.left - M.right;
  const xMax = niceMax(Math.max(...c.x, 1));
  const xs = c.numericX ? (i: number) => M.left + (plotW * c.x[i]) / xMax : (i: number) => M.left + (c.x.length === 1 ? plotW / 2 : (plotW * i) / (c.x.length - 1));
  const body = [...lines];
  if (c.numericX) {
    for (let k = 0; k <= 5; k++) body.push(`<text x="${M.left + (plotW * k) / 5}" y="${H - M.bottom + 18}" text-anchor="middle">${short((xMax * k) / 5)}</text>`);
  } else c.x.forEach((v, i) => body.push(`<text x="${xs(i)}" y="${H - M.bottom + 18}" text-anchor="middle">${v}</text>`));
  body.push(`<text x="${M.left + plotW / 2}" y="${H - 14}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#333"/>`);
  c.series.forEach((s, j) => {
    const pts = s.values.map((v, i) => (Number.isFinite(v) && (!log || v > 0) ? `${xs(i)},${y(v)}` : null)).filter(Boolean);
    body.push(`<polyline fill="none" stroke="${COLORS[j % COLORS.length]}" stroke-width="2" points="${pts.join(' ')}"/>`);
    for (const p of pts) body.push(`<circle cx="${p!.split(',')[0]}" cy="${p!.split(',')[1]}" r="3" fill="${COLORS[j % COLORS.length]}"/>`);
  });
  return frame(c.title, c.yLabel, body, c.series.map((s) => s.name));
}

/** Write an SVG into bench/results/; returns its path. */
export function writeChart(name: string, svg: string): string {
  return writeText(`${name}.svg`, svg + '\n');
}

export { RESULTS_DIR };
