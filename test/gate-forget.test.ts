// Forgetting every verdict and mark (queue overflow, a full table, a generation bump, a reload) must not open the
// gate for an instant. FAN_MARK_FLUSH destroyed every inode mark of the gate group at once, and a read whose fsnotify
// walk held its inode's mark in that instant passed without an event (docs/kernel.md, "Forgetting every mark";
// experiments exp14 and exp15). So a forget clears every mark's ignore and deny bits in place, and the marks stay.
// Read from /proc/self/fdinfo; and run for real: an unprivileged user reads denied files in a loop while the gate
// forgets as fast as it can.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FAN_ALLOW } from '../src/gate/types.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { withGate } from './helpers/gate-harness.js';
import { isRoot } from './helpers/scratch.js';
import { taggedPolicy, writeTagged } from './helpers/tag-files.js';
import { within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const EPERM = 1;
const FAN_OPEN_PERM = 0x10000;
const FAN_OPEN_EXEC_PERM = 0x40000;
const FAN_DENY_EPERM = 0x02 | (EPERM << 24); // FAN_DENY_ERRNO(EPERM)

interface InodeMark {
  ino: number;
  mask: number;
  ignored: number;
}

/** The inode marks of this process's gate groups on device `dev` (fdinfo's sdev is the kernel's dev_t). */
function inodeMarks(dev: number): InodeMark[] {
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | ((Math.floor(dev / 0x100000) & 0xfff) << 8);
  const sdev = ((major << 20) | minor).toString(16);
  const out: InodeMark[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    let info = '';
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:[fanotify]') continue;
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    for (const line of info.split('\n')) {
      const m = /^fanotify ino:([0-9a-f]+) sdev:([0-9a-f]+) mflags:[0-9a-f]+ mask:([0-9a-f]+) ignored_mask:([0-9a-f]+)/.exec(line);
      if (m && m[2] === sdev) out.push({ ino: parseInt(m[1], 16), mask: parseInt(m[3], 16), ignored: parseInt(m[4], 16) });
    }
  }
  return out.sort((a, b) => a.ino - b.ino);
}

t0('forgetAll clears every ignore and deny bit in place: the marks stay, every file is asked again, nothing is flushed', async (t) => {
  const names = Array.from({ length: 20 }, (_, i) => `f${i}`);
  let badIno = -1;
  const h = await withGate(t, 'ext4', {
    // A table smaller than the marks: swept entries keep their ignore marks, which the table no longer knows.
    maxAllowedEntries: 4,
    prepare: async (d) => {
      for (const n of names) await writeFile(join(d, n), `clean ${n}\n`);
      await writeFile(join(d, 'bad'), 'bad\n');
      badIno = statSync(join(d, 'bad')).ino;
    },
    onEvent: (e, hh) => {
      if (e.kind !== 'perm') return;
      if (e.ino === badIno) {
        hh.gate.native.condemn(e.fd, FAN_DENY_EPERM);
        hh.gate.native.answer(e.id, FAN_DENY_EPERM);
      } else {
        hh.gate.native.bless(e.fd);
        hh.gate.native.answer(e.id, FAN_ALLOW);
      }
    },
  });
  await openToEveryone(h.scratch.dir);
  const atk = await makeAttacker(t);
  const dev = statSync(h.scratch.dir).dev;
  const readAll = async (files: string[]) =>
    (await atk.run('python3', ['-c', `import sys\nfor p in sys.argv[1:]:\n  try:\n    open(p,'rb').read(); print('read')\n  except OSError as e: print('refused', e.errno)`, ...files.map((n) => join(h.scratch.dir, n))])).stdout.trim().split('\n');
  for (const n of [...names, 'bad']) await chmod(join(h.scratch.dir, n), 0o644);

  t.deepEqual(await readAll([...names, 'bad']), [...names.map(() => 'read'), `refused ${EPERM}`]);
  const before = inodeMarks(dev);
  t.is(before.filter((m) => m.ignored !== 0).length, names.length, JSON.stringify(before));
  t.is(before.filter((m) => m.mask & FAN_OPEN_PERM).length, 1, 'the denied file asks for its opens');
  t.true(h.gate.native.stats().verdictTableSwept > 0, 'the table dropped entries whose marks stayed: ' + JSON.stringify(h.gate.native.stats()));

  t.true(await h.gate.forgetAll(), 'the kernel\'s part done within its bound');
  const after = inodeMarks(dev);
  t.deepEqual(after.map((m) => m.ino), before.map((m) => m.ino), 'the same marks, none destroyed');
  t.true(after.every((m) => m.ignored === 0 && !(m.mask & FAN_OPEN_PERM) && m.mask & FAN_OPEN_EXEC_PERM), JSON.stringify(after));
  t.like(h.gate.native.stats(), { marksForgotten: names.length + 1, ignoreMarkFlushes: 0 });

  // Forgotten means asked again: every file raises an event, and the bad one is refused again.
  const asked = h.events.length;
  t.deepEqual(await readAll([...names, 'bad']), [...names.map(() => 'read'), `refused ${EPERM}`]);
  const again = new Set(h.events.slice(asked).filter((e) => e.kind === 'perm').map((e) => e.ino));
  t.is(again.size, names.length + 1, 'every file judged again');
});

t0('attack: denied files read in a loop by an unprivileged user while the gate forgets everything in a loop: nothing is served', async (t) => {
  const key = randomBytes(32);
  const names = Array.from({ length: 100 }, (_, i) => `secret${i}`);
  const h = await withGate(t, 'ext4', {
    // A deadline refuses here (the harness's default allows): only the kernel could let content through.
    deadlineAnswer: 'deny',
    // Files whose valid tags say deny: the reader thread refuses them on its own, at native speed (tag_settle.cc).
    prepare: (d) => writeTagged(d, names, key, 'deny', () => 'SECRET CONTENT\n'),
    onEvent: (e, hh) => {
      if (e.kind === 'settled') hh.gate.native.release(e.fd);
      if (e.kind === 'perm') hh.gate.native.answer(e.id, FAN_DENY_EPERM); // the tags settle every file: not asked
    },
  });
  h.gate.native.setTagPolicy(taggedPolicy(key, FAN_DENY_EPERM));
  await openToEveryone(h.scratch.dir);
  for (const n of names) await chmod(join(h.scratch.dir, n), 0o644);
  const atk = await makeAttacker(t);
  // Two readers, each reading every file in turn; a read that returns content is a leak. Each forget takes the
  // deny marks' bits away; the next read is settled by the tags again, which marks the inode again.
  const reader = `import os,sys
d=sys.argv[1]; names=sys.argv[2].split(','); rounds=int(sys.argv[3]); served=0; refused=0; other=0
for r in range(rounds):
  for n in names:
    try:
      fd=os.open(os.path.join(d,n), os.O_RDONLY)
    except OSError:
      refused+=1; continue
    try:
      if os.pread(fd, 64, 0): served+=1
    except OSError as e:
      if e.errno==1: refused+=1
      else: other+=1
    os.close(fd)
print(served, refused, other)`;
  const rounds = 100;
  const runs = [0, 1].map(() => atk.run('python3', ['-c', reader, h.scratch.dir, names.join(','), String(rounds)], { timeoutMs: 120_000 }));
  let forgets = 0;
  let reading = true;
  const all = Promise.all(runs).finally(() => (reading = false));
  // Forget as fast as the loop turns, between the gate's own batches.
  while (reading) {
    h.gate.native.forgetAll();
    forgets++;
    await new Promise((r) => setImmediate(r));
  }
  const results = (await within('the readers', all, 150_000)).map((r) => {
    t.is(r.code, 0, r.stderr);
    return r.stdout.trim().split(' ').map(Number);
  });
  const served = results.reduce((sum, r) => sum + r[0], 0);
  const s = h.gate.native.stats();
  t.log(`reads ${2 * rounds * names.length}, served ${served}; forgets ${forgets}, marks forgotten ${s.marksForgotten}, flushes ${s.ignoreMarkFlushes}, settled by tags ${s.fastTagsDenied}, deadline answers ${s.answeredByDeadline + s.answeredAccessDeadline}`);
  t.true(forgets > 1000, `the gate forgot ${forgets} times`);
  t.true(s.fastTagsDenied > 1000, 'the tags denied again after the forgets');
  t.is(served, 0, 'no denied content served');
  t.deepEqual(results.map((r) => r[1]), [rounds * names.length, rounds * names.length], 'every read refused');
});
