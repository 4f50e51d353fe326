// One access, one judgement. Read mode's open raises no event now (native/fanotify/compat.h), so the race this guarded
// — the open notice of a `cat` arriving before its read and finding the read's machine already judged and gone —
// cannot start; the hook still holds any notice that would come. It must not judge the file again (a second machine, a second verdict
// notice, a second count: `verdicts.allow` once counted 15 for 10 files). The ordering is forced, not hoped for: the
// notice is held (dispatch.ts noticeHooks) until the read's verdict is in and its machine has ended.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { noticeHooks } from '../../src/daemon/dispatch.js';
import { inodeKey } from '../../src/inode/registry.js';
import { startChild } from '../helpers/child.js';
import { withDaemon } from '../helpers/daemon-harness.js';
import { isRoot } from '../helpers/scratch.js';
import { waitFor } from '../helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;

t0("one access, one judgement: read mode's open raises no notice at all, and a notice hook held meanwhile sees none", async (t) => {
  const h = await withDaemon(t, 'ext4', { prepare: (d) => writeFile(join(d, 'once.txt'), 'judged once\n') });
  const file = join(h.dir, 'once.txt');
  const st = statSync(file);
  const key = inodeKey(st.dev, st.ino);
  const verdicts = () => h.notices.filter((n) => n.event === 'verdict' && n['path'] === file);

  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const held: string[] = [];
  noticeHooks.hold = (k) => {
    held.push(k);
    return k === key ? released : Promise.resolve();
  };
  t.teardown(() => {
    noticeHooks.hold = undefined;
    release();
  });

  const reader = startChild('cat', [file], 30_000);
  const r = await reader.done;
  t.is(r.stdout, 'judged once\n', r.stderr);
  // The read was judged by its own machine while its open notice was held; that machine has ended.
  await waitFor('the read machine to end', () => h.daemon.stats().machines === 0, 10_000);
  t.deepEqual(held, [], "read mode: the cat's open raised no notice (its read is the one event)");
  t.is(verdicts().length, 1);
  t.is(h.daemon.stats().verdicts.allow, 1);

  // Let the notice go on, and look once it has judged (its reaction runs before the next immediate).
  release();
  await released;
  await new Promise((r) => setImmediate(r));
  t.is(h.daemon.stats().machines, 0, 'no second machine for the same access');
  // Anything it would have started has had its time: the gate is idle, no machine is live.
  await waitFor('the daemon to be idle', () => h.daemon.stats().machines === 0 && h.daemon.stats().gate.pendingNow === 0, 10_000);
  t.is(verdicts().length, 1, 'one verdict notice');
  t.is(h.daemon.stats().verdicts.allow, 1, 'one count');
});
