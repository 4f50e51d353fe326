// The preload library and a running daemon never scan the same file: the daemon publishes what it guards, the
// library steps aside there. Real daemon (fanotify) on a private ext4 image, real programs as an unprivileged user.
import test from 'ava';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withDaemon } from './helpers/daemon-harness.js';
import { EICAR, EICAR_SCANNER, makePreloadLab } from './helpers/preload-lab.js';
import { isRoot } from './helpers/scratch.js';

const root = isRoot() ? test : test.skip;

root('where a running daemon guards the filesystem the library steps aside; once it stops, the library gates again', async (t) => {
  const pub = mkdtempSync(join(tmpdir(), 'blessd-guards-'));
  chmodSync(pub, 0o755); // world-readable, as /run/blessd is
  t.teardown(() => rmSync(pub, { recursive: true, force: true }));
  const guardsFile = join(pub, 'guards');
  const h = await withDaemon(t, 'ext4', { guardsFile });
  const published = readFileSync(guardsFile, 'utf8');
  t.regex(published, new RegExp(`^blessd-guards v1 pid=${process.pid}\\ndev=\\d+ kind=filesystem path=${encodeURIComponent(h.dir).replace(/[.%]/g, '\\$&')}\\n$`));
  const lab = await makePreloadLab(t, 'ext4', { on: h.scratch });
  lab.scanner('sig', EICAR_SCANNER);
  lab.config();
  const env = { BLESSD_GUARDS_FILE: guardsFile };
  const clean = lab.file('clean.txt', 'fine\n');
  t.is((await lab.run('cat', [clean], { env })).stdout, 'fine\n');
  const bad = lab.file('eicar.com', EICAR);
  const denied = await lab.run('cat', [bad], { env });
  t.false(denied.stdout.includes('EICAR'), 'the daemon refused it');
  t.deepEqual(lab.scans(), [], 'the library scanned nothing the daemon guards');
  // Control: the same programs, without the published file, scan in the library.
  const other = lab.file('other.txt', 'also fine\n');
  t.is((await lab.run('cat', [other], { env: { BLESSD_GUARDS_FILE: join(pub, 'none') } })).stdout, 'also fine\n');
  t.is(lab.scans().length, 1);
  await h.stop();
  t.false(existsSync(guardsFile), 'a stopped daemon withdraws what it published');
  const later = lab.file('later.txt', 'later\n');
  t.is((await lab.run('cat', [later], { env })).stdout, 'later\n');
  t.is(lab.scans().length, 2, 'without a daemon the library gates');
});
