// The must-pass directory with real symlinks and programs in a temp dir: good links become exec entries, every
// kind of bad entry is a warning naming its path, and the merged stack puts them where the config says.
import test from 'ava';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { parseConfig } from '../src/config/index.js';
import { MustPassError, effectiveStack, mergeStack, readMustPass } from '../src/policy/must-pass.js';
import { evaluate } from '../src/policy/stack.js';

async function fixture(t: { teardown(fn: () => Promise<void>): void }): Promise<{ base: string; dir: string; bin: string }> {
  const base = await mkdtemp(join(tmpdir(), 'blessd-mustpass-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const dir = join(base, 'must-pass.d');
  const bin = join(base, 'bin');
  await mkdir(dir);
  await mkdir(bin);
  for (const name of ['clamscan', 'yara-check']) {
    await writeFile(join(bin, name), '#!/bin/sh\necho scanned "$1"\n');
    await chmod(join(bin, name), 0o755);
  }
  await writeFile(join(bin, 'notes.txt'), 'not a program\n');
  await chmod(join(bin, 'notes.txt'), 0o644);
  return { base, dir, bin };
}

test('good links become exec entries; bad ones are warnings by path, never a crash', async (t) => {
  const { dir, bin } = await fixture(t);
  await symlink(join(bin, 'clamscan'), join(dir, 'clamav')); // absolute target
  await symlink('../bin/yara-check', join(dir, 'yara')); // relative to the link's directory
  await symlink(join(bin, 'gone'), join(dir, 'broken')); // dangling
  await symlink(join(bin, 'notes.txt'), join(dir, 'notes')); // not executable
  await symlink(bin, join(dir, 'adir')); // a directory, not a program
  await symlink(join(bin, 'clamscan'), join(dir, 'Bad.Name')); // name not allowed as a tag name
  await writeFile(join(dir, 'plainfile'), '#!/bin/sh\n'); // a regular file, not a link
  await chmod(join(dir, 'plainfile'), 0o755);
  await symlink('loop-b', join(dir, 'loop-a')); // a symlink loop
  await symlink('loop-a', join(dir, 'loop-b'));

  const { entries, warnings } = await readMustPass(dir, 'requisite');
  t.deepEqual(
    entries.map((e) => [e.name, e.actor, e.control, e.options]),
    [
      ['clamav', 'exec', 'requisite', { program: join(bin, 'clamscan') }],
      ['yara', 'exec', 'requisite', { program: join(bin, 'yara-check') }],
    ],
  );
  t.is(entries[0]!.origin, join(dir, 'clamav'));
  t.is(entries[0]!.maxSize, 1024 ** 3); // the same per-entry defaults as config.yaml entries
  t.is(entries[0]!.onTimeout, 'deny');

  const byPath = Object.fromEntries(warnings.map((w) => [w.path.slice(dir.length + 1), w.code]));
  t.deepEqual(byPath, {
    'Bad.Name': 'MUSTPASS_BAD_NAME',
    adir: 'MUSTPASS_NOT_EXECUTABLE',
    broken: 'MUSTPASS_DANGLING',
    'loop-a': 'MUSTPASS_DANGLING',
    'loop-b': 'MUSTPASS_DANGLING',
    notes: 'MUSTPASS_NOT_EXECUTABLE',
    plainfile: 'MUSTPASS_NOT_SYMLINK',
  });
  for (const w of warnings) t.true(w.message.startsWith(`${w.path}: `), w.message);
  t.regex(warnings.find((w) => w.code === 'MUSTPASS_DANGLING' && w.path.endsWith('broken'))!.message, /does not exist \(ENOENT\)/);

  // The program an entry names is the real, runnable target.
  const run = await runChild(entries[1]!.options['program'] as string, ['/some/file'], { timeoutMs: 5000 });
  t.is(run.code, 0);
  t.is(run.stdout, 'scanned /some/file\n');
});

test('an unreadable or missing directory is an error with a code, not a silent empty set', async (t) => {
  const { base } = await fixture(t);
  const err = await t.throwsAsync(readMustPass(join(base, 'nope')), { instanceOf: MustPassError });
  t.is(err?.code, 'BLESSD_MUSTPASS');
  t.regex(err!.message, /nope: does not exist \(mustPass\.dir: a directory of symlinks/);
});

test('mergeStack: before the default, at the end, and duplicates skipped with a warning', async (t) => {
  const { base, dir, bin } = await fixture(t);
  await symlink(join(bin, 'clamscan'), join(dir, 'clamav'));
  await symlink(join(bin, 'yara-check'), join(dir, 'signature')); // clashes with the config's scanner
  await writeFile(join(base, 'config.yaml'), '');
  const config = parseConfig(
    `guards:\n  - path: /srv\nstack:\n  - actor: signature\n  - actor: default\n    options: { answer: allow }\nmustPass:\n  dir: must-pass.d\n`,
    join(base, 'config.yaml'),
  );
  const { entries } = await readMustPass(dir);

  const before = mergeStack(config.stack, entries, 'beforeDefault');
  t.deepEqual(before.stack.map((e) => e.name), ['signature', 'clamav', 'default']);
  t.deepEqual(before.warnings.map((w) => [w.code, w.path]), [['MUSTPASS_DUPLICATE', join(dir, 'signature')]]);
  t.deepEqual(mergeStack(config.stack, entries, 'end').stack.map((e) => e.name), ['signature', 'default', 'clamav']);
  // Without a default entry, beforeDefault appends.
  t.deepEqual(mergeStack(config.stack.slice(0, 1), entries, 'beforeDefault').stack.map((e) => e.name), ['signature', 'clamav']);

  // effectiveStack reads the configured directory (relative to the config file) and merges.
  const eff = await effectiveStack(config);
  t.deepEqual(eff.stack.map((e) => e.name), ['signature', 'clamav', 'default']);
  t.deepEqual(eff.warnings.map((w) => w.code), ['MUSTPASS_DUPLICATE']);
  // ... and the must-pass scanner really must pass: its deny denies even though default allows.
  const answers = new Map([
    ['signature', { answer: 'ok' as const }],
    ['clamav', { answer: 'deny' as const, reason: 'exit 1' }],
    ['default', { answer: 'allow' as const }],
  ]);
  t.like(evaluate(eff.stack, answers), { verdict: 'deny', decidedBy: 'clamav' });
});

test('an empty directory adds nothing', async (t) => {
  const { dir } = await fixture(t);
  t.deepEqual(await readMustPass(dir), { entries: [], warnings: [] });
});
