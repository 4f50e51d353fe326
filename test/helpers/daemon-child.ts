// The daemon as its own child process (`blessd run`), for faults that need one: SIGKILL, a low fd limit. Started with an
// optional command prefix (e.g. prlimit), ready when it prints `ready`; killed (SIGKILL) at teardown if still alive.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './daemon-harness.js';

export const BLESSD = join(REPO, 'dist/src/cli/blessd.js');

export interface DaemonProcess {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it wrote (its JSON log), so far. */
  output(): string;
  kill(signal: NodeJS.Signals): Promise<void>;
}

export async function startDaemonProcess(t: { teardown(fn: () => void | Promise<void>): void }, config: string, prefix: string[] = [], readyMs = 30_000): Promise<DaemonProcess> {
  const argv = [...prefix, process.execPath, BLESSD, 'run', '--config', config];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let alive = true;
  void exited.then(() => (alive = false));
  const kill = async (signal: NodeJS.Signals) => {
    if (alive) child.kill(signal);
    await exited;
  };
  t.teardown(() => kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`blessd did not get ready within ${readyMs} ms: ${out}`)), readyMs);
    const onData = () => {
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`blessd exited (${code ?? signal}) before it was ready: ${out}`));
    });
  });
  return { child, exited, output: () => out, kill };
}
