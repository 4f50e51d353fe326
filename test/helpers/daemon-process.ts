// `blessd run` as its own process, guarding a private scratch filesystem — for tests whose attack could freeze or
// kill the daemon: the test process stays free to notice it, to time it, and to clean up. Ready means the daemon
// printed `ready` (its socket is up); teardown kills it (SIGKILL) and unmounts, also on failure.
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChild, type ChildResult } from './child.js';
import { REPO } from './daemon-harness.js';
import { makeScratch, type Scratch, type ScratchKind } from './scratch.js';

export const BLESSD = join(REPO, 'dist/src/cli/blessd.js');
export const BLESSCTL = join(REPO, 'dist/src/cli/blessctl.js');

export interface DaemonProcess {
  scratch: Scratch;
  dir: string;
  socket: string;
  configFile: string;
  /** stderr (the JSON log) so far. */
  log(): string;
  /** Start (again) on the same config; resolves once it printed `ready`, rejects after timeoutMs. */
  start(timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait for the exit code (rejects after timeoutMs: a daemon that ignores SIGTERM is a failure). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** `blessctl ARGS --socket S`, bounded (default 5 s). */
  ctl(args: string[], timeoutMs?: number): Promise<ChildResult>;
}

export async function withDaemonProcess(t: ExecutionContext, fs: ScratchKind, configBody: (dir: string, state: string) => string): Promise<DaemonProcess> {
  const scratch = await makeScratch(fs, 128);
  const state = join(scratch.base, 'state');
  await mkdir(state);
  const socket = join(scratch.base, 'blessd.sock');
  const configFile = join(scratch.base, 'config.yaml');
  await writeFile(configFile, `stateDir: ${state}\nsocket: { path: ${socket} }\n${configBody(scratch.dir, state)}`);
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  let stderr = '';
  const p: DaemonProcess = {
    scratch,
    dir: scratch.dir,
    socket,
    configFile,
    log: () => stderr,
    start(timeoutMs = 20_000) {
      const c = spawn('node', [BLESSD, 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      c.stderr!.setEncoding('utf8').on('data', (d) => (stderr += d));
      exited = new Promise((resolve) => c.on('exit', (code) => resolve(code)));
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`blessd did not get ready within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
        let out = '';
        c.stdout!.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          if (out.includes('ready\n')) {
            clearTimeout(timer);
            resolve();
          }
        });
        c.on('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`blessd exited ${code} before ready: ${stderr}`));
        });
      });
    },
    async stop(timeoutMs = 10_000) {
      if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`blessd ignored SIGTERM for ${timeoutMs} ms`)), timeoutMs)));
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    ctl(args, timeoutMs = 5_000) {
      return runChild('node', [BLESSCTL, ...args, '--socket', socket], { timeoutMs });
    },
  };
  t.teardown(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await scratch.cleanup();
  });
  await p.start();
  return p;
}
