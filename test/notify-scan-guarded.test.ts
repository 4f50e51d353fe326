// The control socket's `scan` judges only guarded files (issue 10.8): a file on a filesystem no guard covers gets
// an error, no verdict and no tag; guarded files are judged as before.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from '../src/gate/addon.js';
import { EICAR } from '../src/daemon/demo.js';
import { withNotify } from './helpers/notify-harness.js';
import { isRoot, makeScratch } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;

t0('scan outside every guard judges and tags nothing; inside, it judges', async (t) => {
  // Written before the daemon starts: a write under its eyes would be rescanned after its close, and that scan could
  // land before the count below is read (it did, on a loaded machine).
  const h = await withNotify(t, 'tmpfs', { prepare: (d) => writeFile(join(d, 'eicar.com'), EICAR) });
  const outside = await makeScratch('tmpfs', 8); // a private mount that no guard covers
  t.teardown(() => outside.cleanup());
  const stray = join(outside.dir, 'eicar.com');
  await writeFile(stray, EICAR);
  const c = await h.client();

  const r = (await c.request('scan', { path: stray, progress: false })) as any;
  t.like(r.scan, { total: 1, denied: 0, allowed: 0, errors: 1 });
  t.deepEqual(native.listXattr(stray).filter((n) => n.includes('scanned-by')), [], 'no tag written outside the guards');
  t.is(h.daemon.stats().scans['signature'] ?? 0, 0, 'no scan ran');

  // Written only now: its close-after-write starts a rescan of its own, which a busy main thread can let land
  // before the count above.
  await writeFile(join(h.dir, 'eicar.com'), EICAR);

  const inside = (await c.request('scan', { path: join(h.dir, 'eicar.com'), progress: false })) as any;
  t.like(inside.scan, { total: 1, denied: 1, errors: 0 });
});
