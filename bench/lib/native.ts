// The C accessor programs, compiled at bench time with gcc into the bench's temp dir, and typed wrappers that run
// them as separate processes (so the gate under test sees a stranger's accesses, never the bench's own).
import { execFile, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SRC = join(process.cwd(), 'bench', 'native');

export interface Tools {
  mkfiles: string;
  access: string;
  load: string;
  floor: string;
}

export async function buildTools(outDir: string): Promise<Tools> {
  const tools = {} as Tools;
  for (const name of ['mkfiles', 'access', 'load', 'floor'] as const) {
    const bin = join(outDir, name);
    await run('gcc', ['-O2', '-Wall', '-o', bin, join(SRC, `${name}.c`), '-lpthread']);
    tools[name] = bin;
  }
  return tools;
}

export interface TreeSpec {
  dir: string;
  start?: number;
  count: number;
  size: number;
  /** Files per subdirectory (0: all in dir). */
  perDir?: number;
}

export async function makeFiles(tools: Tools, spec: TreeSpec, timeoutMs = 600_000): Promise<void> {
  await run(tools.mkfiles, [spec.dir, String(spec.start ?? 0), String(spec.count), String(spec.size), String(spec.perDir ?? 0)], { timeout: timeoutMs });
}

export interface AccessSpec {
  dir: string;
  start?: number;
  count: number;
  perDir?: number;
  rounds?: number;
  /** Bytes per read() (default 4096). */
  readSize?: number;
  /** Read to the end of each file (default: one read). */
  whole?: boolean;
  /** Keep every per-file latency (µs). */
  samples?: boolean;
  /** Wrap the command, e.g. ['nsenter', '-t', pid, '-m', '--']. */
  prefix?: string[];
  /** Stop the pass after this many seconds (the result says how many files were done). */
  limitS?: number;
  timeoutMs?: number;
}

export interface AccessResult {
  n: number;
  /** 1 if limitS cut the pass short. */
  stopped: number;
  errors: number;
  median_us: number;
  p99_us: number;
  mean_us: number;
  elapsed_s: number;
  bytes: number;
  samples?: Float64Array;
}

let seq = 0;

export async function access(tools: Tools, spec: AccessSpec, scratchDir: string): Promise<AccessResult> {
  const out = spec.samples ? join(scratchDir, `lat-${process.pid}-${seq++}.bin`) : '-';
  const args = [spec.dir, spec.start ?? 0, spec.count, spec.perDir ?? 0, spec.rounds ?? 1, spec.readSize ?? 4096, spec.whole ? 1 : 0, out, ...(spec.limitS ? [spec.limitS] : [])].map(String);
  const cmd = [...(spec.prefix ?? []), tools.access, ...args];
  const stdout = await runChild(cmd, spec.timeoutMs ?? (spec.limitS ? spec.limitS * 1000 + 60_000 : 600_000));
  const r = JSON.parse(stdout) as AccessResult;
  if (spec.samples) r.samples = await readSamples(out);
  return r;
}

export async function readSamples(file: string): Promise<Float64Array> {
  const buf = await readFile(file);
  return new Float64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8).slice();
}

/** Run a command asynchronously with a hard time limit (SIGKILL); resolve to its stdout, reject on failure. */
export function runChild(cmd: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd.join(' ')}: ${signal ? `killed by ${signal} (limit ${timeoutMs} ms)` : `exit ${code}`}: ${err.trim().slice(0, 500)}`));
    });
  });
}

export interface Floor {
  pid: number;
  files: number;
  /** Close the group (every mark goes with it); resolves to the events that reached it after it was ready. */
  stop(): Promise<number>;
}

/**
 * The kernel's floor (floor.c): a gate-like group with an ignore mark on every file under dir ('blessed'), or with
 * blessd's read-mode mark and no ignore mark, answering every event at once ('cold'). Killed after limit.
 */
export function startFloor(tools: Pick<Tools, 'floor'>, dir: string, limitMs = 600_000, shape: 'blessed' | 'cold' = 'blessed'): Promise<Floor> {
  return new Promise((resolve, reject) => {
    const child = spawn(tools.floor, shape === 'cold' ? [dir, 'cold'] : [dir], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const kill = setTimeout(() => child.kill('SIGKILL'), limitMs);
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.once('close', (code) => {
      clearTimeout(kill);
      if (!/ready/.test(out)) reject(new Error(`floor: exit ${code} before ready: ${err.trim()}`));
    });
    child.stdout.on('data', (d) => {
      const before = out;
      out += d;
      const m = /ready (\d+)\n/.exec(out);
      if (m && !/ready/.test(before)) {
        resolve({
          pid: child.pid!,
          files: Number(m[1]),
          async stop() {
            child.stdin.end();
            await exited;
            return Number(/events (\d+)/.exec(out)?.[1] ?? NaN);
          },
        });
      }
    });
  });
}

export interface LoadSpec {
  dir: string;
  files: number;
  perDir: number;
  durationMs: number;
  /** Writes per thousand accesses. */
  writePermille: number;
  readers: number;
  timeoutMs?: number;
}

export interface LoadResult {
  reads: number;
  writes: number;
  errors: number;
  bytes: number;
  elapsedS: number;
  writeMeanUs: number;
  writeMaxUs: number;
  /** Every read's latency (µs), all readers. */
  samples: Float64Array;
}

/** N load.c clients started together (a shared wall-clock start), merged. */
export async function load(tools: Tools, spec: LoadSpec, scratchDir: string): Promise<LoadResult> {
  const startAt = Date.now() + 300;
  const outs = Array.from({ length: spec.readers }, (_, i) => join(scratchDir, `load-${process.pid}-${seq++}-${i}.bin`));
  const parts = await Promise.all(
    outs.map((out, i) =>
      runChild(
        [tools.load, spec.dir, String(spec.files), String(spec.perDir), String(spec.durationMs), String(spec.writePermille), String(i + 1 + seq * 1000), String(startAt), out],
        spec.timeoutMs ?? spec.durationMs + 120_000,
      ).then((s) => JSON.parse(s) as { reads: number; writes: number; errors: number; bytes: number; elapsed_s: number; write_mean_us: number; write_max_us: number }),
    ),
  );
  const samples = await Promise.all(outs.map(readSamples));
  const all = new Float64Array(samples.reduce((a, s) => a + s.length, 0));
  let off = 0;
  for (const s of samples) {
    all.set(s, off);
    off += s.length;
  }
  const sum = (k: 'reads' | 'writes' | 'errors' | 'bytes') => parts.reduce((a, p) => a + p[k], 0);
  return {
    reads: sum('reads'),
    writes: sum('writes'),
    errors: sum('errors'),
    bytes: sum('bytes'),
    elapsedS: Math.max(...parts.map((p) => p.elapsed_s)),
    writeMeanUs: parts.reduce((a, p) => a + p.write_mean_us * p.writes, 0) / Math.max(1, sum('writes')),
    writeMaxUs: Math.max(...parts.map((p) => p.write_max_us)),
    samples: all,
  };
}
