// The gate group's inode marks are never destroyed by blessd while the inode is in use. A permission event that
// races the destruction of a mark it iterates is let through by the kernel without reaching any listener
// (docs/kernel.md, "Marks are never destroyed"; docs/kernel/experiments/exp13_mark_race.c): a write into a blessed
// file followed at once by a read was served the new content about once in 2,500 tries while the reader thread
// removed the ignore mark the write had already cleared. So every inode mark keeps a bit of its own mask
// (FAN_OPEN_EXEC_PERM, which the guard's filesystem mark asks for anyway), and removing ignore or deny bits leaves
// the mark in place. Read from /proc/self/fdinfo of the gate group, as an unprivileged user drives the file.
// And a bless is conditional: judged on content that changed since its judgement began, it caches nothing.
import test from 'ava';
import { appendFileSync, closeSync, openSync, readdirSync, readFileSync, readlinkSync, statSync, type BigIntStats } from 'node:fs';
import { chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from './helpers/actor-files.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { withGate } from './helpers/gate-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const FAN_OPEN_PERM = 0x10000;
const FAN_OPEN_EXEC_PERM = 0x40000;

interface InodeMark {
  mask: number;
  ignored: number;
}

/** The inode marks of this process's fanotify groups on inode `ino` of device `dev` (fdinfo: hex ino, sdev). */
function inodeMarks(dev: number, ino: number): InodeMark[] {
  const out: InodeMark[] = [];
  // fdinfo's sdev is the kernel's dev_t (major << 20 | minor); stat's st_dev is the userspace encoding.
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | ((Math.floor(dev / 0x100000) & 0xfff) << 8);
  const sdev = ((major << 20) | minor).toString(16);
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:[fanotify]') continue;
    let info = '';
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of info.split('\n')) {
      const m = /^fanotify ino:([0-9a-f]+) sdev:([0-9a-f]+) mflags:[0-9a-f]+ mask:([0-9a-f]+) ignored_mask:([0-9a-f]+)/.exec(line);
      if (m && parseInt(m[1], 16) === ino && m[2] === sdev) out.push({ mask: parseInt(m[3], 16), ignored: parseInt(m[4], 16) });
    }
  }
  return out;
}

t0('a write into a blessed file clears its ignore bits, and the inode mark stays; so does a deny mark that goes', async (t) => {
  // onRead: nothing rescans the file after the write, so the state after the reader thread's removal is what we see.
  const h = await withDaemon(t, 'ext4', { rescan: 'onRead', debounce: '10ms' });
  await openToEveryone(h.dir);
  const atk = await makeAttacker(t);
  const p = join(h.dir, 'f');
  await writeFile(p, 'clean\n'.padEnd(200, '.'));
  await chown(p, atk.uid, atk.gid);
  const { dev, ino } = statSync(p);
  const read = async () => (await atk.run('python3', ['-c', `import sys\ntry:\n  open(sys.argv[1],'rb').read(); print('read')\nexcept OSError as e: print('refused', e.errno)`, p])).stdout.trim();

  t.is(await read(), 'read');
  await waitFor('the ignore mark of the blessed file', () => inodeMarks(dev, ino).some((m) => m.ignored !== 0));
  const blessed = inodeMarks(dev, ino);
  t.is(blessed.length, 1, JSON.stringify(blessed));

  // The write clears the ignore bits in the kernel; the reader thread then removes them too (a bless that raced the
  // write may have added them after it). Neither may destroy the mark.
  const removed = h.daemon.stats().gate.ignoreMarksRemoved;
  const w = await atk.run('python3', ['-c', `import os,sys\nfd=os.open(sys.argv[1], os.O_WRONLY); os.pwrite(fd, b'changed', 0); os.close(fd)`, p]);
  t.is(w.code, 0, w.stderr);
  await waitFor("the reader thread's removal of the ignore bits", () => h.daemon.stats().gate.ignoreMarksRemoved > removed);
  t.deepEqual(inodeMarks(dev, ino), [{ mask: blessed[0].mask, ignored: 0 }], 'the mark is still there, silent no more');
  t.truthy(blessed[0].mask & FAN_OPEN_EXEC_PERM, 'kept alive by a bit of its own mask');

  // A deny, and the deny going: the mark asks for opens, then stops asking, and stays.
  await writeFile(p, EICAR);
  await chown(p, atk.uid, atk.gid);
  t.is(await read(), 'refused 1');
  await waitFor('the deny mark', () => inodeMarks(dev, ino).some((m) => (m.mask & FAN_OPEN_PERM) !== 0));
  const denyRemoved = h.daemon.stats().gate.denyMarksRemoved;
  const c = await atk.run('python3', ['-c', `import sys\nopen(sys.argv[1],'wb').write(b'clean again\\n')`, p]);
  t.is(c.code, 0, c.stderr);
  await waitFor('the deny mark removed after the write', () => h.daemon.stats().gate.denyMarksRemoved > denyRemoved);
  const after = inodeMarks(dev, ino);
  t.is(after.length, 1, JSON.stringify(after));
  t.is(after[0].mask & FAN_OPEN_PERM, 0, 'opens no longer asked for');
  t.truthy(after[0].mask & FAN_OPEN_EXEC_PERM, 'the mark stayed');

  // The clean content is blessed on that (no longer evictable) mark: the next read raises nothing.
  t.is(await read(), 'read');
  await waitFor('the new ignore bits', () => inodeMarks(dev, ino).some((m) => m.ignored !== 0));
  const before = h.daemon.stats().gate.events.preAccess;
  t.is(await read(), 'read');
  t.is(h.daemon.stats().gate.events.preAccess, before, 'a blessed read raises no event');
});

t0('a bless judged on content that has changed since adds no ignore bits; one on the file as it is does', async (t) => {
  const h = await withGate(t, 'ext4', { prepare: (d) => writeFile(join(d, 'f'), 'judged content\n') });
  const p = join(h.scratch.dir, 'f');
  const fd = openSync(p, 'r');
  t.teardown(() => closeSync(fd));
  // The judgement begins: its ctime. (The stat also makes the next change get a ctime of its own: multigrain.)
  const judged = (st: BigIntStats) => ({ size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs });
  const st0 = statSync(p, { bigint: true });
  const { dev, ino } = st0;
  // A writer comes and goes before the verdict lands.
  appendFileSync(p, 'written after the scan\n');
  h.gate.native.queueBless(fd, judged(st0));
  await waitFor('the stale bless counted', () => h.gate.native.stats().blessesStale === 1);
  t.deepEqual(inodeMarks(Number(dev), Number(ino)).filter((m) => m.ignored !== 0), [], 'no ignore bits on content nobody judged');
  // Judged as it is now: the bless lands.
  h.gate.native.queueBless(fd, judged(statSync(p, { bigint: true })));
  await waitFor('the ignore bits of a bless that holds', () => inodeMarks(Number(dev), Number(ino)).some((m) => m.ignored !== 0));
  t.is(h.gate.native.stats().blessesStale, 1);
});
