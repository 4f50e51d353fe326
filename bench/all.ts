// `npm run bench`: every question with small defaults (a few minutes on 2 cores); `npm run bench:full` (BENCH_FULL=1):
// larger sizes everywhere, a million files for scale, and the peers (fapolicyd, clamonacc + clamd). BENCH_ONLY=warm,cold
// picks scripts. Each script runs as its own process; the tables land in bench/results/<name>.md, all of them in
// bench/results/summary.md.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FULL, RESULTS_DIR, runMain } from './lib/report.js';

const SCRIPTS = FULL ? ['gate', 'warm', 'cold', 'load', 'scale', 'notify', 'peers'] : ['gate', 'warm', 'cold', 'load', 'scale', 'notify'];

function runScript(name: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(process.cwd(), 'dist', 'bench', `${name}.js`)], { stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function main() {
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
  const chosen = only ? only : SCRIPTS;
  for (const s of chosen) if (!existsSync(join(process.cwd(), 'dist', 'bench', `${s}.js`))) throw new Error(`BENCH_ONLY: no bench named "${s}" (have ${SCRIPTS.join(', ')}, peers)`);
  const failed: string[] = [];
  const t0 = performance.now();
  for (const name of chosen) {
    console.log(`\n=== bench/${name} ===`);
    const s0 = performance.now();
    if ((await runScript(name)) !== 0) failed.push(name);
    console.log(`(bench/${name}: ${((performance.now() - s0) / 1000).toFixed(0)} s)`);
  }
  const parts = chosen.map((n) => join(RESULTS_DIR, `${n}.md`)).filter(existsSync).map((f) => readFileSync(f, 'utf8'));
  writeFileSync(join(RESULTS_DIR, 'summary.md'), parts.join('\n'));
  console.log(`\nall done in ${((performance.now() - t0) / 60000).toFixed(1)} min; tables in ${join(RESULTS_DIR, 'summary.md')}`);
  if (failed.length) {
    console.error(`failed: ${failed.join(', ')}`);
    process.exitCode = 1;
  }
}

runMain(main);
