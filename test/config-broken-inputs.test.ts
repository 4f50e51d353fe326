// Broken inputs to `blessd check` and `blessd run` (issue 10.6): a must-pass directory that is missing or a plain
// file, a config of a million globs, a FIFO as config — each a clear error naming the place, no stack trace, no hang.
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';

// A bound on each `blessd check`, not a speed claim: under a full suite on 2 loaded cores starting node alone took
// 10-20 s. A hang (the failure these tests look for) is still cut off, and fails the test.
const CHECK_MS = 60_000;

const BLESSD = join(REPO, 'dist/src/cli/blessd.js');
const noStack = /\n\s+at |MustPassError|"stack"/;

async function dir(t: { teardown(fn: () => Promise<void>): void }) {
  const d = await mkdtemp(join(tmpdir(), 'blessd-broken-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

const cfg = (mustPass: string) => `guards: [{ path: /srv }]\nmustPass:\n  dir: ${mustPass}\nstack:\n  - actor: default\n    options: { answer: allow }\n`;

for (const [what, make] of [
  ['missing', async (_d: string) => {}],
  ['a plain file', async (p: string) => writeFile(p, 'not a directory\n')],
] as const) {
  test(`a must-pass dir that is ${what}: one line naming the config and the dir, exit 1, no stack trace (check and run)`, async (t) => {
    const d = await dir(t);
    const mp = join(d, 'must-pass');
    await make(mp);
    const file = join(d, 'c.yaml');
    await writeFile(file, cfg(mp));
    for (const cmd of ['check', 'run']) {
      const r = await runChild('node', [BLESSD, cmd, '--config', file], { timeoutMs: CHECK_MS });
      t.is(r.code, 1, `${cmd}: ${r.stdout}${r.stderr}`);
      // Plain lines for the admin (the JSON log may say the same once more, on its own line).
      const line = r.stderr.trim().split('\n').filter((l) => l.includes('must-pass') && !l.startsWith('{'));
      t.is(line.length, 1, `${cmd}: one line: ${r.stderr}`);
      t.regex(line[0]!, new RegExp(`c\\.yaml: .*${mp.replace(/[/.]/g, '\\$&')}: ${what === 'missing' ? 'does not exist' : 'is not a directory'} \\(mustPass\\.dir`), cmd);
      t.false(noStack.test(r.stderr), `${cmd}: no stack trace: ${r.stderr}`);
    }
  });
}

test('a config of a million globs is refused at once, by size, with the path', async (t) => {
  const d = await dir(t);
  const file = join(d, 'big.yaml');
  const globs = Array.from({ length: 1_000_000 }, (_, i) => `    - /srv/g${i}/*`).join('\n');
  await writeFile(file, `guards: [{ path: /srv }]\nexempt:\n  paths:\n${globs}\nstack:\n  - actor: default\n    options: { answer: allow }\n`);
  const r = await runChild('node', [BLESSD, 'check', '--config', file], { timeoutMs: CHECK_MS });
  t.is(r.code, 1, r.stdout);
  t.regex(r.stderr, /big\.yaml: the configuration is \d+ bytes; at most 1048576 \(1 MiB\) are read/);
  t.false(noStack.test(r.stderr));
});

test('exempt.paths beyond 1024 globs is an error at its place', async (t) => {
  const d = await dir(t);
  const file = join(d, 'many.yaml');
  const globs = Array.from({ length: 2000 }, (_, i) => `    - /srv/g${i}/*`).join('\n');
  await writeFile(file, `guards: [{ path: /srv }]\nexempt:\n  paths:\n${globs}\nstack:\n  - actor: default\n    options: { answer: allow }\n`);
  const r = await runChild('node', [BLESSD, 'check', '--config', file], { timeoutMs: CHECK_MS });
  t.is(r.code, 1);
  t.regex(r.stderr, /many\.yaml:3:3: exempt\.paths: 2000 globs; at most 1024/);
});

test('a FIFO given as the config is refused without opening it (no hang)', async (t) => {
  const d = await dir(t);
  const fifo = join(d, 'fifo.yaml');
  execFileSync('mkfifo', [fifo]);
  const r = await runChild('node', [BLESSD, 'check', '--config', fifo], { timeoutMs: CHECK_MS });
  t.is(r.signal, null, 'ended by itself, not by the timeout');
  t.is(r.code, 1);
  t.regex(r.stderr, /fifo\.yaml: the configuration must be a regular file/);
});
