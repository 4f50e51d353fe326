// The statistics every bench table rests on: exact percentiles, the .hgrm distribution, ratios, env parsing, charts.
import test from 'ava';
import { barChart, lineChart } from '../bench/lib/chart.js';
import { envInt, envInts, hgrm, percentile, ratio, summarize } from '../bench/lib/report.js';

test('percentiles are exact nearest-rank values of the samples', (t) => {
  const s = Float64Array.from({ length: 1000 }, (_, i) => i + 1); // 1..1000
  t.is(percentile(s, 0.5), 500);
  t.is(percentile(s, 0.99), 990);
  t.is(percentile(s, 0.999), 999);
  t.is(percentile(s, 1), 1000);
  t.true(Number.isNaN(percentile(new Float64Array(0), 0.5)));
});

test('summarize sorts a copy and reports p50, p99, p99.9, max and mean', (t) => {
  const samples = [5, 1, 4, 2, 3];
  const s = summarize(samples);
  t.deepEqual(s, { n: 5, p50: 3, p99: 5, p999: 5, max: 5, mean: 3 });
  t.deepEqual(samples, [5, 1, 4, 2, 3]);
});

test('hgrm lists increasing values and ends at the maximum and the total count', (t) => {
  const text = hgrm(Array.from({ length: 10_000 }, (_, i) => i / 10));
  const rows = text.split('\n').filter((l) => /^\s+\d/.test(l)).map((l) => l.trim().split(/\s+/).map(Number));
  t.true(rows.length > 20);
  for (let i = 1; i < rows.length; i++) t.true(rows[i][0] >= rows[i - 1][0] && rows[i][1] >= rows[i - 1][1]);
  t.is(rows[rows.length - 1][0], 999.9);
  t.regex(text, /#\[Total count\s+= 10000\]/);
});

test('ratios print as multiples, small ones with two significant digits', (t) => {
  t.is(ratio(115, 100), '1.15×');
  t.is(ratio(48_763, 1), '48763×');
  t.is(ratio(0.64, 1000), '0.00064×');
  t.is(ratio(1, 0), 'n/a');
});

test('environment knobs: defaults, underscores, and errors that name the variable', (t) => {
  delete process.env.BENCH_TEST_N;
  t.is(envInt('BENCH_TEST_N', 7), 7);
  process.env.BENCH_TEST_N = '1_000_000';
  t.is(envInt('BENCH_TEST_N', 7), 1_000_000);
  process.env.BENCH_TEST_N = 'lots';
  t.throws(() => envInt('BENCH_TEST_N', 7), { message: /BENCH_TEST_N/ });
  process.env.BENCH_TEST_N = '1,2, 4';
  t.deepEqual(envInts('BENCH_TEST_N', [9]), [1, 2, 4]);
  process.env.BENCH_TEST_N = '1,0';
  t.throws(() => envInts('BENCH_TEST_N', [9]), { message: /BENCH_TEST_N/ });
  delete process.env.BENCH_TEST_N;
});

test('charts are SVG documents with one bar per value and one line per series', (t) => {
  const bars = barChart({ title: 'a & b', yLabel: '×', categories: ['x', 'y'], series: [{ name: 's1', values: [1, 2] }, { name: 's2', values: [3, NaN] }], reference: { value: 1, label: 'base' } });
  t.regex(bars, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.true(bars.trimEnd().endsWith('</svg>'));
  t.true(bars.includes('a &amp; b'));
  t.is((bars.match(/<rect x="\d/g) ?? []).length - 2, 3); // 3 finite bars (+2 legend swatches)
  const lines = lineChart({ title: 't', yLabel: 'y', xLabel: 'x', x: [1, 2, 4], series: [{ name: 'a', values: [10, 100, 1000] }], log: true });
  t.is((lines.match(/<polyline/g) ?? []).length, 1);
  t.is((lines.match(/<circle/g) ?? []).length, 3);
});
