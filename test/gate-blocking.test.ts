// The gate holds real processes' accesses until JS answers, in both modes.
import test from 'ava';
import { writeFile, readFile, copyFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { FAN_ALLOW, FAN_DENY, MASK } from '../src/gate/types.js';
import { withGate } from './helpers/gate-harness.js';
import { startChild, runChild } from './helpers/child.js';
import { waitHeld } from './helpers/wait.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('gate tests skipped: they need root (fanotify permission events, mounts)');

const perm = (mask: number) => (e: { kind: string; mask: number }) => e.kind === 'perm' && (e.mask & mask) !== 0;

t0('tmpfs has no pre-content events: the gate falls back to blocking at open, and the open waits for the answer', async (t) => {
  const h = await withGate(t, 'tmpfs', { prepare: (d) => writeFile(join(d, 'a.txt'), 'hello\n') });
  t.is(h.mode, 'open');
  t.regex(h.fallback ?? '', /pre-content/);
  const { child, done } = startChild('cat', [join(h.scratch.dir, 'a.txt')]);
  const ev = await h.next(perm(MASK.OPEN_PERM));
  let finished = false;
  void done.then(() => (finished = true));
  await waitHeld(child.pid!, 'cat blocked at open', { syscall: 'openat' });
  t.false(finished, 'cat must still be blocked at open');
  t.true(h.gate.native.answer(ev.id, FAN_ALLOW));
  const r = await done;
  t.is(r.code, 0);
  t.is(r.stdout, 'hello\n');
});

t0('ext4 read mode: open and stat are instant, the first read waits for the answer', async (t) => {
  const h = await withGate(t, 'ext4', { prepare: (d) => writeFile(join(d, 'b.txt'), 'body\n') });
  t.is(h.mode, 'read');
  const file = join(h.scratch.dir, 'b.txt');
  const script = `const fs=require('fs');const fd=fs.openSync(${JSON.stringify(file)},'r');process.stdout.write('opened\\n');` +
    `const b=Buffer.alloc(64);const n=fs.readSync(fd,b,0,64,0);process.stdout.write(b.subarray(0,n));`;
  const { child, done } = startChild('node', ['-e', script]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  const ev = await h.next(perm(MASK.PRE_ACCESS));
  t.false(h.events.some((e) => (e.mask & MASK.OPEN_PERM) !== 0), 'the open raised no event: the read is the one blocking event');
  t.is(h.gate.native.stats().events.openNotice, 0, 'and no open notification');
  t.is(h.gate.native.stats().events.openPerm, 0);
  const held = await waitHeld(child.pid!, 'node blocked in its first read', { syscall: ['read', 'pread64'] });
  t.is(held.path, file, 'held reading the guarded file');
  t.is(out, 'opened\n', 'open returned, read still blocked');
  t.is(ev.offset, 0);
  t.true(ev.count >= 4096);
  h.gate.native.answer(ev.id, FAN_ALLOW);
  const r = await done;
  t.is(r.code, 0);
  t.is(r.stdout, 'opened\nbody\n');
});

for (const fs of ['ext4', 'tmpfs'] as const) {
  t0(`${fs}: deny gives EPERM to cat and to node`, async (t) => {
    const h = await withGate(t, fs, {
      prepare: (d) => writeFile(join(d, 'bad.txt'), 'nope\n'),
      onEvent: (e, hh) => e.kind === 'perm' && hh.gate.native.answer(e.id, FAN_DENY),
    });
    const file = join(h.scratch.dir, 'bad.txt');
    const cat = await runChild('cat', [file]);
    t.not(cat.code, 0);
    t.regex(cat.stderr, /Operation not permitted/);
    const node = await runChild('node', ['-e', `try{require('fs').readFileSync(${JSON.stringify(file)})}catch(e){console.log(e.code);process.exit(3)}`]);
    t.is(node.code, 3);
    t.is(node.stdout.trim(), 'EPERM');
  });

  t0(`${fs}: mmap of a denied file fails`, async (t) => {
    const h = await withGate(t, fs, {
      prepare: (d) => writeFile(join(d, 'map.bin'), Buffer.alloc(8192, 7)),
      onEvent: (e, hh) => e.kind === 'perm' && hh.gate.native.answer(e.id, FAN_DENY),
    });
    const file = join(h.scratch.dir, 'map.bin');
    // tmpfs refuses at open; on ext4 the open passes and the mmap() call itself is refused.
    const py = `import mmap,os,sys\ntry:\n fd=os.open(${JSON.stringify(file)},os.O_RDONLY)\nexcept OSError as e:\n print('open',e.errno);sys.exit(3)\ntry:\n m=mmap.mmap(fd,0,prot=mmap.PROT_READ);print('mapped',m[0]);sys.exit(0)\nexcept OSError as e:\n print('mmap',e.errno);sys.exit(3)`;
    const r = await runChild('python3', ['-c', py]);
    t.is(r.code, 3, r.stdout + r.stderr);
    t.regex(r.stdout, fs === 'ext4' ? /^mmap 1\b/ : /^open 1\b/);
  });

  t0(`${fs}: exec of a denied binary fails`, async (t) => {
    const h = await withGate(t, fs, {
      prepare: async (d) => {
        await copyFile('/bin/true', join(d, 'prog'));
        await chmod(join(d, 'prog'), 0o755);
      },
      onEvent: (e, hh) => e.kind === 'perm' && hh.gate.native.answer(e.id, e.mask & MASK.OPEN_EXEC_PERM ? FAN_DENY : FAN_ALLOW),
    });
    // Through sh: spawn() waits for its child's execve, and we are the ones who must answer it (docs/kernel.md).
    const r = await runChild('sh', ['-c', `${join(h.scratch.dir, 'prog')}; echo rc=$?`]);
    t.regex(r.stderr, /Operation not permitted|Permission denied/);
    t.regex(r.stdout, /rc=126/);
    t.true(h.events.some((e) => e.kind === 'perm' && (e.mask & MASK.OPEN_EXEC_PERM) !== 0));
  });
}

t0('own accesses never reach JS', async (t) => {
  const h = await withGate(t, 'tmpfs', { prepare: (d) => writeFile(join(d, 'own.txt'), 'mine') });
  const before = h.gate.native.stats().fastOwn;
  t.is(await readFile(join(h.scratch.dir, 'own.txt'), 'utf8'), 'mine');
  await h.settle(); // any event of that read would have reached JS by now
  t.is(h.events.filter((e) => e.kind === 'perm').length, 0);
  t.true(h.gate.native.stats().fastOwn > before);
});
