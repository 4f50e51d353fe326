// Limits checked at load, where the value is written (issue 10.5), rather than where they would bite later: a
// timer node clamps to 1 ms, a deadline the native gate refuses, and an fd limit too low for gate.maxPending.
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../src/config/index.js';
import { fdBudgetProblem, openFileLimit } from '../src/config/limits.js';
import { runChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';

const BLESSD = join(REPO, 'dist/src/cli/blessd.js');
const base = (extra: string) => `guards: [{ path: /srv }]\n${extra}stack:\n  - actor: default\n    options: { answer: allow }\n`;

function problems(text: string): string {
  const err = (() => {
    try {
      parseConfig(text, '/etc/blessd/c.yaml');
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  if (!(err instanceof ConfigError)) throw new Error(`expected a ConfigError for:\n${text}`);
  return err.message;
}

test('pool.scanTimeout of 2^31 ms or more is refused where it is written (node would fire it after 1 ms)', (t) => {
  t.regex(problems(base('pool:\n  scanTimeout: 2147483648\n')), /c\.yaml:3:3: pool\.scanTimeout: must be at most 2147483647ms: node timers/);
  t.regex(problems(base('pool:\n  rescanDebounce: 30d\n')), /c\.yaml:3:3: pool\.rescanDebounce: must be at most/);
  t.is(parseConfig(base('pool:\n  scanTimeout: 2147483647\n'), '/x/c.yaml').pool.scanTimeout, 2 ** 31 - 1);
});

test('gate.deadline above an hour is refused at load, not by a bare RangeError at run', (t) => {
  t.regex(problems(base('gate:\n  deadline: 2h\n')), /c\.yaml:3:3: gate\.deadline: must be at most 3600000ms: the native gate/);
  t.is(parseConfig(base('gate:\n  deadline: 1h\n'), '/x/c.yaml').gate.deadline, 3_600_000);
});

test('the fd limit is read from the process, and maxPending must fit it', (t) => {
  const limit = openFileLimit();
  t.true(limit !== undefined && limit > 0, `RLIMIT_NOFILE read from /proc/self/limits: ${limit}`);
  t.is(fdBudgetProblem(100, 20000), undefined);
  t.regex(fdBudgetProblem(4096, 100)!, /may open 100 \(RLIMIT_NOFILE\): raise the limit/);
  t.regex(fdBudgetProblem(4096, 1024)!, /set gate\.maxPending to at most 896/);
});

test('blessd check under ulimit -n 256 names gate.maxPending and the limit', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'blessd-limits-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.yaml');
  await writeFile(file, base('gate:\n  maxPending: 4096\n'));
  const low = await runChild('sh', ['-c', `ulimit -n 256 && exec node ${BLESSD} check --config ${file}`]);
  t.is(low.code, 1, low.stdout);
  t.regex(low.stderr, /c\.yaml:3:3: gate\.maxPending: 4096 waiting events hold 4096 fds, plus 128 for the rest, but this process may open 256/);
  t.false(/\n\s+at /.test(low.stderr), 'no stack trace');
  const dflt = await writeFile(file, base('')).then(() => runChild('sh', ['-c', `ulimit -n 256 && exec node ${BLESSD} check --config ${file}`]));
  t.is(dflt.code, 1);
  t.regex(dflt.stderr, /gate\.maxPending: \(default 4096\) 4096 waiting events/);
  const ok = await runChild('sh', ['-c', `ulimit -n 8192 && exec node ${BLESSD} check --config ${file}`]);
  t.is(ok.code, 0, ok.stderr);
});
