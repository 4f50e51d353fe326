// `blessd run` as its own child process — for tests whose fault or attack could freeze or kill the daemon (SIGKILL,
// SIGSTOP, a low fd limit, a stalled socket): the test process stays free to notice it, to time it, and to clean up.
// Two ways in: startDaemonProcess runs a config file the test wrote (optionally behind a command prefix such as
// prlimit); withDaemonProcess also makes the private scratch filesystem and the config around a guard body, and can
// stop and start the daemon again. Ready means the daemon printed `ready` on stdout (its socket is up); a daemon that
// exits first, or is not ready in time, fails the test with its output. Teardown SIGKILLs whatever still runs (after a
// SIGCONT, in case a test left it stopped) and unmounts, also on failure.
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChild, type ChildResult } from './child.js';
import { REPO } from './daemon-harness.js';
import { makeScratch, type Scratch, type ScratchKind } from './scratch.js';

export const BLESSD = join(REPO, 'dist/src/cli/blessd.js');
export const BLESSCTL = join(REPO, 'dist/src/cli/blessctl.js');

type Teardown = { teardown(fn: () => void | Promise<void>): void };

/**
 * How long a start may take before it fails the test. Ready is an event (the `ready` line), and a daemon that exits
 * first fails at once; the bound only catches one that hangs. A start compiles the signature databases and starts
 * the pool's threads: seconds alone, and many times that on a loaded 2-core CI machine with other test workers, so
 * the bound is generous (below ava's 90 s) and one for both ways in. A failure says how much CPU the daemon got
 * meanwhile: a starved start and a hung one read differently.
 */
export const READY_MS = 60_000;

/** utime + stime of `pid` in seconds (/proc/PID/stat), or undefined once it is gone. */
function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // fields 14 and 15, in clock ticks (USER_HZ is 100 on Linux)
  } catch {
    return undefined;
  }
}

export interface DaemonChild {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it wrote, stdout and stderr (its JSON log), so far. */
  output(): string;
  /** stderr (the JSON log) so far. */
  log(): string;
  /** Send `signal` if it still runs, and wait for its exit. */
  kill(signal: NodeJS.Signals): Promise<void>;
}

/** Spawn `blessd run --config FILE` and resolve once it printed `ready`; SIGKILLed at teardown if still alive. */
export async function startDaemonProcess(t: Teardown, config: string, prefix: string[] = [], readyMs = READY_MS): Promise<DaemonChild> {
  const argv = [...prefix, process.execPath, BLESSD, 'run', '--config', config];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let stdout = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => ((out += d), (stdout += d)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => ((out += d), (err += d)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const running = () => child.exitCode === null && child.signalCode === null;
  const kill = async (signal: NodeJS.Signals) => {
    if (running()) child.kill(signal);
    await exited;
  };
  t.teardown(async () => {
    if (running()) child.kill('SIGCONT');
    await kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`blessd did not get ready within ${readyMs} ms (it had ${cpuSeconds(child.pid) ?? '?'} s of CPU meanwhile): ${out}`)), readyMs);
    const onData = () => {
      if (/^ready$/m.test(stdout)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.on('error', (e) => (clearTimeout(timer), reject(e)));
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`blessd exited (${code ?? signal}) before it was ready: ${out}`));
    });
  });
  return { child, exited, output: () => out, log: () => err, kill };
}

export interface DaemonProcess {
  scratch: Scratch;
  dir: string;
  socket: string;
  configFile: string;
  /** The current run. */
  current(): DaemonChild;
  /** stderr (the JSON log) of every run so far. */
  log(): string;
  /** Start (again) on the same config; resolves once it printed `ready`, rejects after timeoutMs. */
  start(timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait for the exit code (rejects after timeoutMs, default 30 s: a daemon that ignores SIGTERM is a failure). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** `blessctl ARGS --socket S`, bounded (default 30 s: a node start alone takes seconds on a loaded machine). */
  ctl(args: string[], timeoutMs?: number): Promise<ChildResult>;
}

/** A scratch filesystem of `fs`, a config of stateDir + socket + `configBody(dir, state)`, and the daemon on it. */
export async function withDaemonProcess(
  t: ExecutionContext,
  fs: ScratchKind,
  configBody: (dir: string, state: string) => string,
  opts: {
    /** Files made before the daemon starts (new files made after it are judged as their writer closes them). */
    prepare?: (dir: string) => Promise<void>;
    /** A command prefix the daemon runs behind (`ip netns exec NS`: a host of test/helpers/netns.ts). */
    prefix?: string[];
  } = {},
): Promise<DaemonProcess> {
  const scratch = await makeScratch(fs, 128);
  // Registered first, so it runs after the daemon's own teardown (AVA runs them last-in, first-out).
  t.teardown(() => scratch.cleanup());
  const state = join(scratch.base, 'state');
  await mkdir(state);
  const socket = join(scratch.base, 'blessd.sock');
  const configFile = join(scratch.base, 'config.yaml');
  if (opts.prepare) await opts.prepare(scratch.dir);
  await writeFile(configFile, `stateDir: ${state}\nsocket: { path: ${socket} }\n${configBody(scratch.dir, state)}`);
  const runs: DaemonChild[] = [];
  const p: DaemonProcess = {
    scratch,
    dir: scratch.dir,
    socket,
    configFile,
    current: () => runs[runs.length - 1]!,
    log: () => runs.map((r) => r.log()).join(''),
    async start(timeoutMs = READY_MS) {
      runs.push(await startDaemonProcess(t, configFile, opts.prefix ?? [], timeoutMs));
    },
    async stop(timeoutMs = 30_000) {
      const run = runs[runs.length - 1];
      if (!run) return null;
      if (run.child.exitCode !== null || run.child.signalCode !== null) return run.child.exitCode;
      run.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`blessd ignored SIGTERM for ${timeoutMs} ms`)), timeoutMs)));
      try {
        return (await Promise.race([run.exited, timeout])).code;
      } finally {
        clearTimeout(timer);
      }
    },
    ctl(args, timeoutMs = 30_000) {
      return runChild(process.execPath, [BLESSCTL, ...args, '--socket', socket], { timeoutMs });
    },
  };
  await p.start();
  return p;
}
