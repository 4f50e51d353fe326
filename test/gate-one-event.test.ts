// Read mode blocks once per cold access: the filesystem mark asks for reads, mmaps and execs only (no open event),
// and what the open event gave us is kept per inode — a denied inode carries its own FAN_OPEN_PERM mark, so that
// its opens are refused, while a writer may still open it to replace the content.
import test from 'ava';
import { closeSync, openSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FAN_ALLOW, MASK, denyErrno, type GateEvent } from '../src/gate/types.js';
import { withGate } from './helpers/gate-harness.js';
import { runChild } from './helpers/child.js';
import { waitFor } from './helpers/wait.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('gate tests skipped: they need root (fanotify permission events, mounts)');

const EPERM = denyErrno('EPERM');
const EPERM_NO = 1;

/** python3: open `file` with `flags`, then read (or write) once; prints "open <errno>", "read <errno>" or "ok <n>". */
function access(file: string, how: 'read' | 'write' | 'rdwr'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const flags = how === 'read' ? 'os.O_RDONLY' : how === 'write' ? 'os.O_WRONLY' : 'os.O_RDWR';
  const op = how === 'read' ? 'n=len(os.read(fd,100))' : 'n=os.write(fd,b"fresh content\\n")';
  const py = `import os,sys\ntry:\n fd=os.open(${JSON.stringify(file)},${flags})\nexcept OSError as e:\n print('open',e.errno);sys.exit(0)\ntry:\n ${op}\nexcept OSError as e:\n print('io',e.errno);sys.exit(0)\nos.close(fd)\nprint('ok',n)`;
  return runChild('python3', ['-c', py]);
}

t0('ext4 read mode: a cold read is one blocking event, the pre-access of the read; no open event, no open notice', async (t) => {
  const seen: GateEvent[] = [];
  const h = await withGate(t, 'ext4', {
    prepare: (d) => writeFile(join(d, 'cold.txt'), 'cold body\n'),
    onEvent: (e, hh) => {
      if (e.kind !== 'perm') return;
      seen.push(e);
      hh.gate.native.bless(e.fd);
      hh.gate.native.answer(e.id, FAN_ALLOW);
    },
  });
  t.is(h.mode, 'read');
  const file = join(h.scratch.dir, 'cold.txt');
  const before = h.gate.native.stats();
  const r = await access(file, 'read');
  t.is(r.stdout.trim(), 'ok 10', r.stderr);
  await h.settle();
  const after = h.gate.native.stats();
  t.is(seen.length, 1, 'one event reached JS for the cold read');
  t.truthy(seen[0].mask & MASK.PRE_ACCESS, 'and it is the read');
  t.is(after.events.openPerm - before.events.openPerm, 0, 'the open raised no permission event');
  t.is(after.openAllowed - before.openAllowed, 0);
  t.is(after.events.openNotice - before.events.openNotice, 0, 'no open notification either');
  // Blessed: the kernel is silent about it from now on, open and read alike.
  const again = await access(file, 'read');
  t.is(again.stdout.trim(), 'ok 10');
  await h.settle();
  t.is(seen.length, 1, 'the blessed file costs no event');
  t.is(h.gate.native.stats().events.openPerm, after.events.openPerm);
});

t0('ext4 read mode: a denied file refuses its open with the deny errno, and that open is the only open event; other files raise none', async (t) => {
  let badIno = -1;
  const h = await withGate(t, 'ext4', {
    prepare: async (d) => {
      await writeFile(join(d, 'bad.bin'), 'bad content\n');
      await writeFile(join(d, 'good.txt'), 'good\n');
      badIno = statSync(join(d, 'bad.bin')).ino;
    },
    onEvent: (e, hh) => {
      if (e.kind !== 'perm') return;
      if (e.ino === badIno) {
        hh.gate.native.condemn(e.fd, EPERM);
        hh.gate.native.answer(e.id, EPERM);
      } else {
        hh.gate.native.answer(e.id, FAN_ALLOW);
      }
    },
  });
  const bad = join(h.scratch.dir, 'bad.bin');
  const first = await access(bad, 'read');
  t.is(first.stdout.trim(), `io ${EPERM_NO}`, 'judged at the first read: the open passed, the read is refused');
  const s0 = h.gate.native.stats();
  t.is(s0.events.openPerm, 0, 'no open event before the deny');
  t.is(s0.denyMarksAdded, 1, 'the deny put an open mark on its inode');

  const second = await access(bad, 'read');
  t.is(second.stdout.trim(), `open ${EPERM_NO}`, 'known denied: refused at open');
  const s1 = h.gate.native.stats();
  t.is(s1.events.openPerm - s0.events.openPerm, 1, 'that open was one open event');
  t.is(s1.openRefused - s0.openRefused, 1);
  t.is(s1.forwarded, s0.forwarded, 'refused on the native thread, JS not asked');

  const good = await access(join(h.scratch.dir, 'good.txt'), 'read');
  t.is(good.stdout.trim(), 'ok 5');
  await h.settle();
  t.is(h.gate.native.stats().events.openPerm, s1.events.openPerm, 'the deny mark is the denied inode\'s own: other opens raise nothing');
});

t0('ext4 read mode: a writer opens, writes and closes a denied file; the change drops the deny mark, O_RDWR stays refused until then', async (t) => {
  let judged = 0;
  const h = await withGate(t, 'ext4', {
    prepare: (d) => writeFile(join(d, 'bad.bin'), 'bad content\n'),
    onEvent: (e, hh) => {
      if (e.kind !== 'perm') return;
      judged++;
      if (judged === 1) {
        hh.gate.native.condemn(e.fd, EPERM);
        hh.gate.native.answer(e.id, EPERM);
      } else {
        hh.gate.native.answer(e.id, FAN_ALLOW); // the new content
      }
    },
  });
  const file = join(h.scratch.dir, 'bad.bin');
  t.is((await access(file, 'read')).stdout.trim(), `io ${EPERM_NO}`);
  t.is((await access(file, 'rdwr')).stdout.trim(), `open ${EPERM_NO}`, 'an opener that could read is refused at open');
  const before = h.gate.native.stats();
  const w = await runChild('python3', ['-c', `import os\nfd=os.open(${JSON.stringify(file)},os.O_WRONLY|os.O_TRUNC)\nos.write(fd,b"clean now\\n")\nos.close(fd)\nprint('written')`]);
  t.is(w.stdout.trim(), 'written', w.stderr);
  const mid = h.gate.native.stats();
  t.true(mid.fastWriter > before.fastWriter, 'the writer passed natively');
  t.is(mid.forwarded, before.forwarded, 'a writer\'s open, write and close start no judgement');
  // The change record makes the inode dirty: its deny mark goes, and the next reader is judged at its read.
  const r = await access(file, 'read');
  t.is(r.stdout.trim(), 'ok 10', r.stdout + r.stderr);
  const after = h.gate.native.stats();
  t.true(after.denyMarksRemoved >= 1, 'the deny mark went with the verdict');
  t.is(judged, 2, 'the new content was judged at its first read');
  t.is(after.openRefused, before.openRefused, 'the reader\'s open was not refused');
});

t0('ext4 read mode: a deny forgotten (forgetAll, forget) drops its open mark; a bless of a denied inode replaces it with the ignore mark', async (t) => {
  let judged = 0;
  const h = await withGate(t, 'ext4', {
    prepare: (d) => writeFile(join(d, 'x.bin'), 'xx\n'),
    onEvent: (e, hh) => {
      if (e.kind !== 'perm') return;
      judged++;
      hh.gate.native.condemn(e.fd, EPERM);
      hh.gate.native.answer(e.id, EPERM);
    },
  });
  const file = join(h.scratch.dir, 'x.bin');
  t.is((await access(file, 'read')).stdout.trim(), `io ${EPERM_NO}`);
  t.is((await access(file, 'read')).stdout.trim(), `open ${EPERM_NO}`);
  await h.gate.forgetAll();
  t.is((await access(file, 'read')).stdout.trim(), `io ${EPERM_NO}`, 'forgotten: the open passes, the read is judged (deny again)');
  t.is((await access(file, 'read')).stdout.trim(), `open ${EPERM_NO}`, 'denied again: refused at open again');
  t.is(judged, 2);
  // Our own opens pass on the reader thread (the deny mark asks about them too).
  const own = openSync(file, 'r');
  t.teardown(() => closeSync(own));
  h.gate.native.forget(own);
  t.is((await access(file, 'read')).stdout.trim(), `io ${EPERM_NO}`, 'forgotten by fd: its open passes, its read is judged');
  t.is(judged, 3);
  t.is((await access(file, 'read')).stdout.trim(), `open ${EPERM_NO}`);
  // JS changes its mind about the denied inode (a rescan with new signatures): the bless must drop the deny mark
  // first, or the kernel refuses the evictable ignore mark on top of it.
  // What one settle() costs by itself (its barrier read raises events of its own).
  await h.settle();
  const b0 = h.gate.native.stats().events.preAccess;
  await h.settle();
  const barrier = h.gate.native.stats().events.preAccess - b0;
  const s0 = h.gate.native.stats();
  t.true(h.gate.native.bless(own), 'the ignore mark was accepted');
  t.is((await access(file, 'read')).stdout.trim(), 'ok 3');
  await h.settle();
  const s1 = h.gate.native.stats();
  t.is(judged, 3, 'blessed: not asked again');
  t.is(s1.events.openPerm, s0.events.openPerm, 'its open no longer asks');
  t.is(s1.events.preAccess - s0.events.preAccess, barrier, 'only the barrier read of settle() raised events');
  t.true(s1.denyMarksRemoved > s0.denyMarksRemoved);
  // The same through the answer thread's queued bless (what the daemon uses): denied again, then blessed queued.
  h.gate.native.condemn(own, EPERM);
  t.is((await access(file, 'read')).stdout.trim(), `open ${EPERM_NO}`, 'denied again: refused at open');
  const q0 = h.gate.native.stats();
  h.gate.native.queueBless(own);
  await waitFor('the queued bless to drop the deny mark', () => h.gate.native.stats().denyMarksRemoved > q0.denyMarksRemoved, 10_000);
  t.is((await access(file, 'read')).stdout.trim(), 'ok 3');
  await h.settle();
  const q1 = h.gate.native.stats();
  t.is(judged, 3, 'blessed by the queue: not asked again');
  t.is(q1.events.openPerm, q0.events.openPerm, 'its open no longer asks');
});

t0('ext4 read mode, tree guard: the open checkpoint refuses a denied file at open too; a writer still opens it', async (t) => {
  const h = await withGate(t, 'ext4', {
    kind: 'tree',
    prepare: (d) => writeFile(join(d, 'bad.bin'), 'bad content\n'),
    onEvent: (e, hh) => {
      if (e.kind !== 'perm') return;
      hh.gate.native.condemn(e.fd, EPERM);
      hh.gate.native.answer(e.id, EPERM);
    },
  });
  t.is(h.mode, 'read');
  const file = join(h.scratch.dir, 'bad.bin');
  t.is((await access(file, 'read')).stdout.trim(), `io ${EPERM_NO}`, 'judged at the first read');
  const s0 = h.gate.native.stats();
  t.is((await access(file, 'read')).stdout.trim(), `open ${EPERM_NO}`, 'known denied: refused at the checkpoint open');
  t.is(h.gate.native.stats().openRefused - s0.openRefused, 1);
  t.is((await access(file, 'write')).stdout.trim(), 'ok 14', 'a writer opens and writes it');
});
