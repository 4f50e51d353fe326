// Question: which YARA-X build should the yara actor use — the native binding (@litko/yara-x-linux-x64-gnu, a dependency) or
// the official WebAssembly package (@virustotal/yara-x)? Same rules, same bytes, same process, interleaved rounds.
//
// Rules: BENCH_RULES generated rules (a text string and a hex string with wildcards each) plus one EICAR-like text
// rule. Data: small files (4 KiB, the file-server case: per-file cost) and one large buffer (64 MiB: throughput).
// The baseline is the native build: the WASM column is a ratio against it (higher = slower for times).
// The WASM package is not a dependency: `npm i --no-save @virustotal/yara-x` before running, or it is skipped.
//
//   flock /work/bench.lock node dist/bench/yara.js      (BENCH_RULES=200 BENCH_SMALL=300 BENCH_ROUNDS=3)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { envInt, printTable, ratio, summarize, writeResult } from './lib/report.js';

const RULES = envInt('BENCH_RULES', 200);
const SMALL = envInt('BENCH_SMALL', 300);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const require = createRequire(import.meta.url);

function ruleSource(): string {
  let src = '';
  for (let i = 0; i < RULES; i++) {
    const b = (i % 256).toString(16).padStart(2, '0');
    src += `rule r${i} { strings: $a = "needle-${i}-xyz" $b = { 4D 5A ?? ?? 50 45 ${b} } condition: $a or $b }\n`;
  }
  return src + 'rule marker { strings: $m = "BLESSD-BENCH-MARKER" condition: $m }\n';
}

function pseudoRandom(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; // xorshift32
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

interface Engine {
  name: string;
  compileMs: number;
  scan(data: Buffer): number; // matches
}

function nativeEngine(src: string): Engine {
  const started = performance.now();
  const { compile } = require('@litko/yara-x-linux-x64-gnu') as { compile(s: string): { scan(d: Buffer): unknown[] } };
  const rules = compile(src);
  return { name: 'native (@litko/yara-x)', compileMs: performance.now() - started, scan: (d) => rules.scan(d).length };
}

interface WasmModule {
  initSync(m: { module: Buffer }): void;
  Compiler: new () => { addSource(s: string): void; build(): { scanner(): { scan(d: Uint8Array): unknown } } };
}

async function wasmEngine(src: string): Promise<Engine | undefined> {
  let mod: WasmModule;
  try {
    const name = '@virustotal/yara-x'; // not a dependency: only this bench loads it
    mod = (await import(name)) as WasmModule;
  } catch {
    return undefined;
  }
  const started = performance.now();
  const pkg = require.resolve('@virustotal/yara-x/package.json');
  mod.initSync({ module: readFileSync(join(dirname(pkg), 'pkg', 'yara_x_js_bg.wasm')) });
  const c = new mod.Compiler();
  c.addSource(src);
  const scanner = c.build().scanner();
  return {
    name: 'wasm (@virustotal/yara-x)',
    compileMs: performance.now() - started,
    scan: (d) => ((scanner.scan(d) as { matches?: unknown[] }).matches ?? []).length,
  };
}

async function main() {
  const src = ruleSource();
  const small = Array.from({ length: SMALL }, (_, i) => pseudoRandom(4096, i + 1));
  small[0] = Buffer.concat([Buffer.from('BLESSD-BENCH-MARKER'), small[0].subarray(19)]);
  const large = pseudoRandom(64 << 20, 99);
  const engines = [nativeEngine(src)];
  const wasm = await wasmEngine(src);
  if (wasm) engines.push(wasm);
  else console.log('@virustotal/yara-x not installed (npm i --no-save @virustotal/yara-x): native only');

  const perFile: Record<string, number[]> = {};
  const mbps: Record<string, number[]> = {};
  for (const e of engines) {
    perFile[e.name] = [];
    mbps[e.name] = [];
    if (e.scan(small[0]) !== 1) throw new Error(`${e.name}: the marker file did not match`);
  }
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved: each round runs every engine on the same data, so machine noise hits both alike.
    for (const e of engines) {
      const t0 = performance.now();
      for (const f of small) e.scan(f);
      perFile[e.name].push(((performance.now() - t0) * 1000) / small.length);
      const t1 = performance.now();
      e.scan(large);
      mbps[e.name].push(64 / ((performance.now() - t1) / 1000));
    }
  }
  const base = engines[0].name;
  const med = (xs: number[]) => summarize(Float64Array.from(xs).sort()).p50;
  const rows = engines.map((e) => ({
    engine: e.name,
    'compile ms': e.compileMs.toFixed(0),
    '4 KiB file µs (p50 of rounds)': med(perFile[e.name]).toFixed(1),
    'per file vs native': ratio(med(perFile[e.name]), med(perFile[base])),
    '64 MiB MB/s': med(mbps[e.name]).toFixed(0),
    'MB/s vs native': ratio(med(mbps[e.name]), med(mbps[base])),
  }));
  printTable(`yara engines: ${RULES + 1} rules, ${SMALL} × 4 KiB and 64 MiB, ${ROUNDS} interleaved rounds`, rows);
  writeResult('yara', { rules: RULES + 1, small: SMALL, rounds: ROUNDS, rows });
}

await main();
