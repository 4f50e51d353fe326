// The settle walk (native/fanotify/settle_walk.cc): after a restart, a native thread walks the guards and settles
// every file whose valid tags decide it, before anyone accesses it. Then the first read of a tagged clean file
// raises no permission event at all (its ignore mark is in place), a deny-tagged file is refused from the table,
// a file changed while the daemon was down (stale tags) is left for its access and scanned there, a file changed
// while the walk runs is never served unscanned, symlinks and mounts in a guard are not entered, and a stop in the
// middle of a walk ends it at once.
import test, { type ExecutionContext } from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { EICAR } from '../src/daemon/demo.js';
import type { SettleWalkStats } from '../src/gate/types.js';
import { runChild } from './helpers/child.js';
import { withDaemon, type DaemonHarness } from './helpers/daemon-harness.js';
import { isRoot, makeScratch } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;

const walkOf = (h: DaemonHarness): SettleWalkStats => h.daemon.stats().gate.settleWalk;
const eventsOf = (h: DaemonHarness) => Object.values(h.daemon.stats().gate.events).reduce((a, b) => a + b, 0);

/** Bounded: fails the test if the walk does not get through every guard in time. */
async function walkDone(h: DaemonHarness, timeoutMs = 15_000) {
  await waitFor(`the settle walk to complete: ${JSON.stringify(walkOf(h))}`, () => walkOf(h).completed >= 1 && walkOf(h).state === 'done', timeoutMs);
}

/** Every file read once by a child process, so that the daemon scans and tags it. */
async function tagAll(h: DaemonHarness, names: string[]) {
  for (const n of names) await runChild('cat', [join(h.dir, n)]);
}

const walkTids = () => readdirSync('/proc/self/task').filter((tid) => {
  try {
    return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'blessd-walk';
  } catch {
    return false;
  }
});
const walkThreads = () => walkTids().length;

/** Resolves with process.hrtime.bigint() at the end of thread `tid` of this process, seen by a watcher thread. */
async function watchThreadEnd(t: ExecutionContext, tid: string): Promise<{ ended: Promise<bigint> }> {
  const w = new Worker(
    `const { workerData: { tid }, parentPort } = require('node:worker_threads');
     const { existsSync } = require('node:fs');
     const nap = new Int32Array(new SharedArrayBuffer(4));
     while (existsSync('/proc/self/task/' + tid)) Atomics.wait(nap, 0, 0, 1);
     parentPort.postMessage(process.hrtime.bigint());`,
    { eval: true, workerData: { tid } },
  );
  t.teardown(() => void w.terminate());
  const ended = new Promise<bigint>((resolve, reject) => w.once('message', resolve).once('error', reject));
  await within('the watcher thread', new Promise((resolve, reject) => w.once('online', resolve).once('error', reject)));
  return { ended };
}

for (const fs of ['ext4', 'tmpfs'] as const) {
  t0(`${fs}: after a restart the walk settles tagged files: no event at their first read, a deny tag refuses, stale tags are scanned`, async (t) => {
    const clean = ['a.txt', 'b.txt', 'c.txt', 'sub/d.txt'];
    const h = await withDaemon(t, fs, {
      wait: fs === 'tmpfs' ? 'open' : 'read',
      settleWalk: '{ enabled: true, filesPerSecond: 2000 }',
      prepare: async (d) => {
        await mkdir(join(d, 'sub'));
        for (const n of clean) await writeFile(join(d, n), `clean ${n}\n`);
        await writeFile(join(d, 'stale.txt'), 'clean for now\n');
        await writeFile(join(d, 'bad.com'), EICAR);
      },
    });
    await tagAll(h, [...clean, 'stale.txt', 'bad.com']);
    t.is(h.daemon.stats().scans.signature, 6);

    // Changed while down: its tags still say clean, but for other content. The walk must not believe them.
    await h.stop();
    await writeFile(join(h.dir, 'stale.txt'), EICAR);
    await h.restart();
    await walkDone(h);
    const w = walkOf(h);
    t.is(w.walked, 6, JSON.stringify(w));
    t.is(w.settledAllowed, clean.length, 'every clean tagged file settled by the walk');
    t.is(w.settledDenied, 1, 'the deny-tagged file got its table entry');
    t.is(w.unsettled, 1, 'the stale file was left for its access');

    const before = h.daemon.stats().gate;
    const events0 = eventsOf(h);
    for (const n of clean) t.is((await runChild('cat', [join(h.dir, n)])).stdout, `clean ${n}\n`);
    const after = h.daemon.stats().gate;
    t.is(eventsOf(h), events0, 'the first reads after the walk raised no fanotify event at all');
    t.is(after.forwarded, before.forwarded);
    t.is(after.fastTagsAllowed, before.fastTagsAllowed, 'nothing was left for the reader thread to settle');

    t.regex((await runChild('cat', [join(h.dir, 'bad.com')])).stderr, /Operation not permitted/);
    t.is(h.daemon.stats().gate.fastDenied - before.fastDenied, fs === 'tmpfs' ? 1 : 1, 'refused from the table the walk filled');

    const stale = await runChild('cat', [join(h.dir, 'stale.txt')]);
    t.regex(stale.stderr, /Operation not permitted/, 'the stale file was scanned at its access, not served');
    t.is(stale.stdout, '');
    t.is(h.daemon.stats().scans.signature, 1, 'only the stale file was scanned');

    // A reload forgets the table: the walk settles everything again, ahead of the accesses.
    const runs = walkOf(h).completed;
    await h.daemon.reload(h.config);
    await waitFor('a second walk after the reload', () => walkOf(h).completed > runs && walkOf(h).state === 'done');
    const events1 = eventsOf(h);
    for (const n of clean) t.is((await runChild('cat', [join(h.dir, n)])).stdout, `clean ${n}\n`);
    t.is(eventsOf(h), events1, `settled again by the walk after the reload: ${JSON.stringify(walkOf(h))}`);
  });
}

t0('ext4: a file written while the walk runs is never served unscanned', async (t) => {
  const names = Array.from({ length: 60 }, (_, i) => `f${i}.txt`);
  const h = await withDaemon(t, 'ext4', {
    settleWalk: '{ enabled: true, filesPerSecond: 40 }',
    prepare: async (d) => {
      for (const n of names) await writeFile(join(d, n), `clean ${n}\n`);
    },
  });
  await tagAll(h, names);
  await walkDone(h, 30_000);
  await h.restart();
  await waitFor('the walk under way', () => walkOf(h).walked >= 5);
  // Some of these the walk has settled already (the write drops that), some it has yet to reach (stale by then).
  const changed = names.filter((_, i) => i % 3 === 0);
  for (const n of changed) await runChild('sh', ['-c', `printf '%s' "$1" > "$2"`, 'sh', EICAR, join(h.dir, n)]);
  await walkDone(h, 30_000);
  for (const n of changed) {
    const r = await runChild('cat', [join(h.dir, n)]);
    t.regex(r.stderr, /Operation not permitted/, `${n} changed during the walk and was served`);
  }
  t.is(h.daemon.stats().scans.signature, changed.length);
  for (const n of names.filter((x) => !changed.includes(x))) t.is((await runChild('cat', [join(h.dir, n)])).stdout, `clean ${n}\n`);
});

t0('ext4: the walk enters no symlink and no mount inside a guard', async (t) => {
  const other = await makeScratch('tmpfs', 8);
  t.teardown(() => other.cleanup());
  for (let i = 0; i < 5; i++) await writeFile(join(other.dir, `o${i}.txt`), `other ${i}\n`);
  let mounted = '';
  const h = await withDaemon(t, 'ext4', {
    settleWalk: '{ enabled: true, filesPerSecond: 5000 }',
    prepare: async (d) => {
      await mkdir(join(d, 'dir'));
      for (let i = 0; i < 3; i++) await writeFile(join(d, 'dir', `x${i}.txt`), `x ${i}\n`);
      await symlink(join(d, 'dir'), join(d, 'link-to-dir'));
      await symlink(join(d, 'dir', 'x0.txt'), join(d, 'link-to-file'));
      await symlink(other.dir, join(d, 'link-out'));
      await mkdir(join(d, 'mnt'));
    },
  });
  await runChild('mount', ['--bind', other.dir, join(h.dir, 'mnt')]);
  mounted = join(h.dir, 'mnt');
  t.teardown(async () => {
    if (mounted) await runChild('umount', ['-l', mounted]);
  });
  await tagAll(h, ['dir/x0.txt', 'dir/x1.txt', 'dir/x2.txt']);
  await h.restart();
  await walkDone(h);
  const w = walkOf(h);
  t.is(w.walked, 3, `only the three regular files of the guard were walked: ${JSON.stringify(w)}`);
  t.is(w.settledAllowed, 3);
  t.true(w.skipped >= 4, `three symlinks and the mount point skipped: ${JSON.stringify(w)}`);
  await runChild('umount', [mounted]);
  mounted = '';
});

t0('ext4: a stop in the middle of a slow walk ends at once and leaves nothing held', async (t) => {
  const names = Array.from({ length: 400 }, (_, i) => `f${i}.txt`);
  const h = await withDaemon(t, 'ext4', {
    settleWalk: '{ enabled: true, filesPerSecond: 1 }',
    prepare: async (d) => {
      for (const n of names) await writeFile(join(d, n), `clean ${n}\n`);
    },
  });
  // Just after its second file: the walk now waits a whole second for its next one, and the stop must cut that short.
  await waitFor('the walk under way', () => walkOf(h).walked >= 2, 10_000, 5);
  t.is(walkThreads(), 1, 'one walk thread');
  // Timed: from the stop to the walk thread's end, as a watcher thread sees it (the walk stops first in the gate's
  // close, before anything whose cost load stretches: joins of other threads, the groups' close). A walk that sat
  // out its pacing would end only when its next file was due, most of a second after the stop.
  const [tid] = walkTids();
  const watch = await watchThreadEnd(t, tid);
  const started = process.hrtime.bigint();
  const stopping = h.stop();
  const ms = Number((await within('the walk thread to end', watch.ended, 30_000)) - started) / 1e6;
  await within('the rest of the stop', stopping, 30_000);
  t.true(ms < 500, `the walk thread ended ${ms.toFixed(0)} ms after the stop (its next file was ~1 s away): the stop did not cut its wait short`);
  t.log(`the walk thread ended ${ms.toFixed(0)} ms after the stop`);
  t.is(walkThreads(), 0, 'the walk thread is gone');
  // No group left: a read of a file nobody judged passes without a daemon to ask.
  t.is((await runChild('cat', [join(h.dir, 'f399.txt')])).stdout, 'clean f399.txt\n');
});
