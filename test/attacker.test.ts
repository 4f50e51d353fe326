// The attack helper itself: the dropped user really is unprivileged, and is gone after the test.
import test from 'ava';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { isRoot } from './helpers/scratch.js';

const run = promisify(execFile);
const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('attacker helper tests skipped: creating users needs root');

t0('the attacker has its own uid, no capabilities, and cannot read root-only files', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'blessd-atk-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const shared = join(base, 'shared');
  await run('mkdir', [shared]);
  await openToEveryone(shared);
  await writeFile(join(shared, 'secret'), 'root only\n');
  await chmod(join(shared, 'secret'), 0o600);
  const a = await makeAttacker(t);
  const id = await a.run('id', ['-u']);
  t.is(Number(id.stdout.trim()), a.uid);
  t.not(a.uid, 0);
  const caps = await a.sh('grep CapEff /proc/self/status');
  t.regex(caps.stdout, /CapEff:\s+0+\s*$/);
  const read = await a.run('cat', [join(shared, 'secret')]);
  t.not(read.code, 0);
  t.regex(read.stderr, /Permission denied/);
  const own = await a.sh(`echo mine > ${join(shared, 'own')} && cat ${join(shared, 'own')}`);
  t.is(own.stdout, 'mine\n');
});

t0('teardown removes the user and its processes', async (t) => {
  let name = '';
  let pid = 0;
  await t.try(async (tt) => {
    const a = await makeAttacker(tt as any);
    name = a.name;
    const p = a.start('sleep', ['600']);
    pid = p.pid;
    tt.notThrows(() => process.kill(pid, 0), 'the attacker process runs before the teardown');
  }).then((r) => r.commit());
  // t.try teardowns run when the attempt is committed
  await t.throwsAsync(run('id', ['-u', name]));
  t.throws(() => process.kill(pid, 0));
});
