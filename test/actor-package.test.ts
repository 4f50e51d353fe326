// docs/actors.md's actor shipped as an npm package (examples/actor-package): packed with `npm pack`, installed from
// the tarball into a private prefix with `npm install`, and named by its installed path in a real daemon's stack.
import test from 'ava';
import { copyFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { REPO, withDaemon } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

test('the example actor package installs with npm and denies an ELF file behind a real gate', async (t) => {
  if (!isRoot()) return t.pass('needs root (fanotify, scratch mounts)');
  const work = await mkdtemp(join(tmpdir(), 'blessd-actor-pkg-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const pack = await runChild('npm', ['pack', '--silent', '--pack-destination', work, join(REPO, 'examples/actor-package')], { timeoutMs: 60_000 });
  t.is(pack.code, 0, pack.stderr);
  const tarball = join(work, pack.stdout.trim().split('\n').pop()!);
  const prefix = join(work, 'prefix');
  const install = await runChild('npm', ['install', '--offline', '--no-audit', '--no-fund', '--prefix', prefix, tarball], { timeoutMs: 60_000 });
  t.is(install.code, 0, install.stderr);
  const actor = join(prefix, 'node_modules/blessd-actor-magic/index.js');

  const h = await withDaemon(t, 'tmpfs', {
    notices: true,
    stack: `  - actor: ${actor}
    name: magic
    options: { magic: { elf: 7f454c46 } }
  - actor: default
    options: { answer: allow }`,
  });
  const elf = join(h.dir, 'true');
  copyFileSync('/bin/true', elf);
  const text = join(h.dir, 'notes.txt');
  writeFileSync(text, 'plain words\n');
  const denied = await runChild('cat', [elf]);
  t.not(denied.code, 0);
  t.regex(denied.stderr, /Operation not permitted/);
  t.is((await runChild('cat', [text])).stdout, 'plain words\n');
  const deny = h.notices.find((n) => n.event === 'verdict' && n['verdict'] === 'deny' && n['path'] === elf);
  t.is(deny?.['reason'], 'magic (required) denied: magic: elf', JSON.stringify(h.notices));
});
