// One access, one judgement. Read mode's open raises no event (native/fanotify/compat.h) and the reader thread hands
// JS no open notice (the JS open-notice path is gone), so the race this once guarded — the open notice of a `cat`
// arriving before its read and finding the read's judgement already done — cannot start. What must hold: one read
// of a new file is judged once (one verdict notice, one count: `verdicts.allow` once counted 15 for 10 files), and
// nothing is judged again once that judgement has ended.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startChild } from '../helpers/child.js';
import { withDaemon } from '../helpers/daemon-harness.js';
import { isRoot } from '../helpers/scratch.js';
import { waitFor } from '../helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;

t0("one access, one judgement: read mode's open raises no notice at all, and the read is judged once", async (t) => {
  const h = await withDaemon(t, 'ext4', { notices: true, prepare: (d) => writeFile(join(d, 'once.txt'), 'judged once\n') });
  const file = join(h.dir, 'once.txt');
  const verdicts = () => h.notices.filter((n) => n.event === 'verdict' && n['path'] === file);
  const before = h.daemon.stats().gate;

  const r = await startChild('cat', [file], 30_000).done;
  t.is(r.stdout, 'judged once\n', r.stderr);
  await waitFor('the judgement to end', () => h.daemon.stats().machines === 0 && h.daemon.stats().gate.pendingNow === 0, 10_000);
  const after = h.daemon.stats().gate;
  t.is(after.events.openNotice - before.events.openNotice, 0, "read mode: the cat's open raised no notification");
  t.is(after.events.openPerm - before.events.openPerm, 0, 'nor a permission event');
  t.is(after.forwarded - before.forwarded, 1, 'its read is the one event JS saw');

  // A second read of the now blessed file is silent: nothing more to judge.
  t.is((await startChild('cat', [file], 30_000).done).stdout, 'judged once\n');
  await waitFor('the daemon to be idle', () => h.daemon.stats().machines === 0 && h.daemon.stats().gate.pendingNow === 0, 10_000);
  t.is(h.daemon.stats().gate.forwarded - before.forwarded, 1, 'the blessed file raised no second event');
  t.is(verdicts().length, 1, 'one verdict notice');
  t.is(h.daemon.stats().verdicts.allow, 1, 'one count');
});
