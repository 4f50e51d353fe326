// The exec actor: any program as a scanner. The file's content is piped to the program's stdin (read by us through
// the daemon's fd); the exit code is the answer. Contract (docs/actors.md):
//   0 -> ok, 1 -> deny (reason: first line of stdout, else "exit 1"), 10 -> allow,
//   any other code, a signal, a failure to start or the timeout -> an error (thrown).
// Environment: BLESSD_PATH (display path; the file may be gone or renamed: do not open it), BLESSD_SIZE,
// BLESSD_SCANNER (the stack entry's name).
//
// options: program: string (path), args?: string[], env?: {[k]: string}, timeoutMs?: number (default 30000)
import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { ActorInstance, ActorModule } from '../src/pool/actor.js';
import type { Answer } from '../src/policy/answer.js';
import { ActorError } from './common/errors.js';
import { noOtherKeys, optionsObject, positiveInteger, requiredString, stringArray, stringRecord } from './common/options.js';
import { runProgram } from './exec/run-program.js';

const NAME = 'exec';
const DEFAULT_TIMEOUT_MS = 30_000;
export const EXIT_OK = 0;
export const EXIT_DENY = 1;
export const EXIT_ALLOW = 10;

/** Reasons end up in tags and logs: one line, bounded. */
function reasonFrom(stdout: string): string {
  const line = stdout.split('\n', 1)[0]!.trim();
  return line === '' ? `exit ${EXIT_DENY}` : line.slice(0, 200);
}

const exec: ActorModule = {
  manifest: { api: 1, name: NAME, version: '1.0.0' },

  async init(raw, context): Promise<ActorInstance> {
    const options = optionsObject(NAME, raw);
    noOtherKeys(NAME, options, ['program', 'args', 'env', 'timeoutMs']);
    const program = requiredString(NAME, options, 'program', 'an absolute path to a program');
    if (!isAbsolute(program)) throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.program must be an absolute path to a program, not ${program}`);
    const args = stringArray(NAME, options, 'args', 'strings', false) ?? [];
    const extraEnv = stringRecord(NAME, options, 'env') ?? {};
    const timeoutMs = positiveInteger(NAME, options, 'timeoutMs', DEFAULT_TIMEOUT_MS);
    const scanner = context?.name ?? NAME;

    let bytes: Buffer;
    try {
      await access(program, constants.X_OK);
      bytes = await readFile(program);
    } catch (err) {
      throw new ActorError('ACTOR_OPTIONS', `${NAME}: options.program ${program} is not a readable executable: ${(err as Error).message}`, { cause: err });
    }
    // A new program (or the same one moved) is a new rule set: older verdicts are stale.
    const generation = createHash('sha256').update(bytes).update('\0').update(program).digest('hex');

    return {
      generation,
      async scan(file): Promise<Answer> {
        const env = { ...process.env, ...extraEnv, BLESSD_PATH: file.path, BLESSD_SIZE: String(file.size), BLESSD_SCANNER: scanner };
        const { code, stdout } = await runProgram({ program, args, env, timeoutMs, input: file.chunks(), tracker: file.trackProcessGroup?.() });
        switch (code) {
          case EXIT_OK:
            return { answer: 'ok' };
          case EXIT_DENY:
            return { answer: 'deny', reason: reasonFrom(stdout) };
          case EXIT_ALLOW:
            return { answer: 'allow' };
          default:
            throw new ActorError('ACTOR_EXEC_EXIT', `exec: ${program} exited with code ${code} (0 = ok, 1 = deny, 10 = allow)`);
        }
      },
    };
  },
};

export default exec;
