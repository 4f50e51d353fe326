// A real unprivileged local user for attack tests: created for one test, dropped to with setpriv (no capabilities,
// no supplementary groups, a clean environment), and removed at teardown with every process it still runs — also
// when the test fails. Children run asynchronously: a gate in this process may have to answer them (a synchronous
// wait on a gated child deadlocks until the deadline).
import type { ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { chmod, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { runChild, type ChildResult } from './child.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);
let serial = 0;

export interface Attacker {
  name: string;
  uid: number;
  gid: number;
  /** Run a command as the attacker; resolves with its result (killed after timeoutMs, default 20 s). */
  run(cmd: string, args: string[], opts?: { timeoutMs?: number; input?: string | Buffer; cwd?: string }): Promise<ChildResult>;
  /** `sh -c script` as the attacker. */
  sh(script: string, opts?: { timeoutMs?: number; input?: string | Buffer; cwd?: string }): Promise<ChildResult>;
  /** Start a long-running command as the attacker; the returned kill() ends it (teardown does too). */
  start(cmd: string, args: string[], opts?: { cwd?: string }): { pid: number; done: Promise<ChildResult>; kill(): void; output(): string };
}

/** A fresh system user for this test, removed (with its processes) at teardown. */
export async function makeAttacker(t: ExecutionContext, label = 'atk'): Promise<Attacker> {
  // useradd names are at most 32 characters; pid + a counter keep parallel test workers apart.
  const name = `bl-${label}-${process.pid}-${serial++}`.slice(0, 32);
  await run('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--user-group', name]);
  const uid = Number((await run('id', ['-u', name])).stdout.trim());
  const gid = Number((await run('id', ['-g', name])).stdout.trim());
  const children = new Set<ReturnType<typeof spawn>>();
  t.teardown(async () => {
    for (const c of children) c.kill('SIGKILL');
    await run('pkill', ['-KILL', '-u', String(uid)]).catch(() => {});
    // userdel refuses while a process of the user lives; the kill above is asynchronous, so retry, bounded: a user
    // left behind fails the test instead of leaking into the next one.
    await waitFor(`userdel ${name} (its processes killed)`, async () => {
      try {
        await run('userdel', [name]);
        return true;
      } catch {
        return false;
      }
    }, 10_000, 100);
  });
  const argv = (cmd: string, args: string[]) => [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=-all', '--', cmd, ...args];
  const env = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/nonexistent', LANG: 'C' };

  const spawnAs = (cmd: string, args: string[], cwd?: string) => {
    const child = spawn('setpriv', argv(cmd, args), { stdio: ['pipe', 'pipe', 'pipe'], env, cwd: cwd ?? '/' });
    children.add(child);
    child.on('close', () => children.delete(child));
    return child;
  };

  const attacker: Attacker = {
    name,
    uid,
    gid,
    run(cmd, args, opts = {}) {
      // Killed after its timeout by runChild; anything it left behind dies with the user at teardown.
      return runChild('setpriv', argv(cmd, args), { ...opts, env, cwd: opts.cwd ?? '/' });
    },
    sh(script, opts) {
      return attacker.run('sh', ['-c', script], opts);
    },
    start(cmd, args, opts = {}) {
      const started = performance.now();
      const child = spawnAs(cmd, args, opts.cwd);
      child.stdin!.end();
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d) => (stderr += d));
      const done = new Promise<ChildResult>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - started }));
      });
      return { pid: child.pid!, done, kill: () => child.kill('SIGKILL'), output: () => stdout + stderr };
    },
  };
  return attacker;
}

/**
 * Let other users reach `dir`: test scratch dirs live under mkdtemp folders (mode 0700). Opens the search bit on
 * every parent up to /tmp, and makes `dir` itself world-writable and sticky, like a shared upload directory.
 */
export async function openToEveryone(dir: string): Promise<void> {
  await chmod(dir, 0o1777);
  for (let p = dirname(dir); p !== '/' && p !== '/tmp'; p = dirname(p)) {
    const mode = (await stat(p)).mode & 0o7777;
    await chmod(p, mode | 0o011);
  }
}
