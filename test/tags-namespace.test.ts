// Which xattr namespace tags can use: trusted. where allowed, user. as the fallback, with a warning saying what it costs.
import test from 'ava';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { probeNamespace } from '../src/tags/namespace.js';
import { KINDS, tagScratch } from './helpers/tag-files.js';
import { runChild } from './helpers/child.js';

const run = promisify(execFile);
const PROBE = fileURLToPath(new URL('./helpers/probe-namespace.js', import.meta.url));

for (const kind of KINDS) {
  test(`${kind}: root gets the namespace it prefers, and no probe file is left`, async (t) => {
    const s = await tagScratch(t, kind);
    t.deepEqual(await probeNamespace(s.scratch.dir, 'trusted'), { namespace: 'trusted' });
    t.deepEqual(await probeNamespace(s.scratch.dir, 'user'), { namespace: 'user' });
    t.deepEqual(readdirSync(s.scratch.dir).filter((n) => n.startsWith('.blessd')), []);
  });

  test(`${kind}: without CAP_SYS_ADMIN trusted is refused: fall back to user, with a warning naming the cost`, async (t) => {
    const s = await tagScratch(t, kind);
    const r = await runChild('setpriv', ['--bounding-set', '-sys_admin', '--inh-caps', '-sys_admin', process.execPath, PROBE, s.scratch.dir, 'trusted'], { timeoutMs: 15_000 });
    t.is(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    t.is(result.namespace, 'user');
    t.regex(result.warning, /trusted xattrs refused \(EPERM\)/);
    t.regex(result.warning, /owners can then see and remove/);
    t.true(result.warning.includes(s.scratch.dir));
  });
}

test('a read-only filesystem: an error that names the directory', async (t) => {
  const s = await tagScratch(t, 'tmpfs');
  await run('mount', ['-o', 'remount,ro', s.scratch.dir]);
  const err = await t.throwsAsync(probeNamespace(s.scratch.dir, 'trusted'));
  t.is((err as { code?: string }).code, 'TAG_NAMESPACE_UNAVAILABLE');
  t.true(err!.message.includes(s.scratch.dir));
  t.regex(err!.message, /EROFS/);
});

test('a directory that does not exist: an error that names it', async (t) => {
  const s = await tagScratch(t, 'tmpfs');
  const missing = join(s.scratch.dir, 'nope');
  const err = await t.throwsAsync(probeNamespace(missing));
  t.is((err as { code?: string }).code, 'TAG_NAMESPACE_UNAVAILABLE');
  t.true(err!.message.includes(missing));
});
