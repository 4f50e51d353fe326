// ramfs (no xattrs, no file handles) is refused as a guard, first or later, by `check` and by `run`, with the
// reason (issue 10.7): blessd could not see a passed file change there, and would serve its old verdict.
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';
import { isRoot, makeScratch } from './helpers/scratch.js';

const run = promisify(execFile);
const BLESSD = join(REPO, 'dist/src/cli/blessd.js');
const t0 = isRoot() ? test.serial : test.skip;

async function ramfs(t: { teardown(fn: () => Promise<void>): void }): Promise<{ base: string; dir: string }> {
  const base = await mkdtemp(join(tmpdir(), 'blessd-ramfs-'));
  const dir = join(base, 'mnt');
  await mkdir(dir);
  await run('mount', ['-t', 'ramfs', 'ramfs', dir]);
  t.teardown(async () => {
    await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
    await rm(base, { recursive: true, force: true });
  });
  return { base, dir };
}

for (const position of ['first', 'later'] as const) {
  t0(`ramfs as the ${position} guard: check and run refuse it with the reason`, async (t) => {
    const r = await ramfs(t);
    const tmp = await makeScratch('tmpfs', 8);
    t.teardown(() => tmp.cleanup());
    const guards = position === 'first' ? [r.dir, tmp.dir] : [tmp.dir, r.dir];
    const file = join(r.base, 'c.yaml');
    await writeFile(
      file,
      `stateDir: ${join(r.base, 'state')}\nsocket: { path: ${join(r.base, 'sock')} }\nguards:\n${guards.map((g) => `  - path: ${g}\n    kind: tree\n`).join('')}stack:\n  - actor: default\n    options: { answer: allow }\n`,
    );
    const line = position === 'first' ? 4 : 6;
    const reason = new RegExp(`c\\.yaml:${line}:\\d+: guards\\[${position === 'first' ? 0 : 1}\\]\\.path: ${r.dir.replace(/[/.]/g, '\\$&')}: ramfs has no file handles and no xattrs`);
    const check = await runChild('node', [BLESSD, 'check', '--config', file]);
    t.is(check.code, 1, check.stdout);
    t.regex(check.stderr, reason);
    const started = await runChild('node', [BLESSD, 'run', '--config', file], { timeoutMs: 20_000 });
    t.is(started.code, 1, started.stdout);
    t.regex(started.stderr, /ramfs has no file handles/);
  });
}
