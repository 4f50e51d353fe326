// Run a scanner program with the file's content on its stdin, asynchronously, and collect its exit status.
//
// Overview (who owns what):
// - The content comes from OUR reads of the daemon's fd (the caller's chunks). The child is never given a path to
//   open: its own accesses would be gated by blessd and could wait on the very verdict it is computing.
// - The child runs in its own process group (detached) so that a timeout kills it AND whatever it started; a
//   grandchild holding stdout open would otherwise keep us waiting. The group is killed when the scan ends, and it
//   is registered with blessd (req.track) so that a scan the pool gives up — its worker destroyed, no timer of
//   ours left to run — still takes the group with it.
// - A program that exits without reading all of stdin is normal (it decided early): EPIPE on our side is ignored.
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { ProcessGroupTracker } from '../../src/pool/actor.js';
import { ActorError } from '../common/errors.js';

export interface RunRequest {
  program: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  input: AsyncIterable<Buffer>;
  /** Registers the child's process group with blessd (ScanFile.trackProcessGroup), so a scan it gives up kills it. */
  tracker?: ProcessGroupTracker;
}

export interface RunResult {
  code: number;
  stdout: string;
}

/** Enough for a reason line; a chatty program must not grow our memory. */
const MAX_OUTPUT = 64 * 1024;

/** Resolves when the pipe can take more, or will never take more (closed or broken). */
function drained(stdin: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stdin.off('drain', done);
      stdin.off('close', done);
      stdin.off('error', done);
      resolve();
    };
    stdin.on('drain', done);
    stdin.on('close', done);
    stdin.on('error', done);
  });
}

export function runProgram(req: RunRequest): Promise<RunResult> {
  const { program } = req;
  return new Promise<RunResult>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // Whatever the program left running in its group (a background child) ends with the scan.
      killGroup();
      req.tracker?.done();
      fn();
    };
    const env = req.tracker ? { ...req.env, ...req.tracker.env } : req.env;
    const child = spawn(program, req.args, { stdio: ['pipe', 'pipe', 'pipe'], env, detached: true });
    if (child.pid !== undefined) req.tracker?.started(child.pid);
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const timer = setTimeout(() => {
      killGroup();
      settle(() => reject(new ActorError('ACTOR_EXEC_TIMEOUT', `exec: ${program} did not finish within ${req.timeoutMs} ms and was killed`)));
    }, req.timeoutMs);

    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_OUTPUT) stdout += d;
    });
    child.stderr.resume(); // drained so a chatty program cannot block on a full pipe; not part of the contract

    child.on('error', (err) => {
      killGroup();
      settle(() => reject(new ActorError('ACTOR_EXEC_SPAWN', `exec: cannot run ${program}: ${err.message}`, { cause: err })));
    });
    // The program's exit is its answer: what it left in its group (holding our stdout open) goes now, and 'close'
    // follows once the pipes drain.
    child.on('exit', killGroup);
    child.on('close', (code, signal) => {
      settle(() => {
        if (signal !== null) reject(new ActorError('ACTOR_EXEC_SIGNAL', `exec: ${program} was killed by ${signal}`));
        else resolve({ code: code ?? -1, stdout });
      });
    });

    // EPIPE / ERR_STREAM_DESTROYED when the program stops reading: expected, the exit code decides.
    child.stdin.on('error', () => {});
    const feed = async () => {
      for await (const chunk of req.input) {
        if (settled || child.stdin.destroyed || child.stdin.writableEnded) break;
        if (!child.stdin.write(chunk)) await drained(child.stdin);
      }
      if (!child.stdin.destroyed) child.stdin.end();
    };
    feed().catch((err: unknown) => {
      // Our read of the file failed: the program's answer would be about partial content.
      killGroup();
      settle(() => reject(new ActorError('ACTOR_READ', `exec: reading the file for ${program} failed: ${(err as Error).message}`, { cause: err })));
    });
  });
}
