// The shared-mapping sweep (native/fanotify/map_sweep.cc) runs on its own native thread: it finds a shared writable
// mapping of a silent (blessed) file in /proc/<pid>/maps while the JS main thread is blocked, drops the file's
// ignore mark so that its next read is judged again, and lets the inode go once the mapping is gone.
import test from 'ava';
import { closeSync, openSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FAN_ALLOW } from '../src/gate/types.js';
import { runChild, startChild } from './helpers/child.js';
import { withGate } from './helpers/gate-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('map sweep tests skipped: they need root (fanotify permission events, mounts)');

/** Blocks this thread (no event-loop turn at all) until `cond` holds; throws naming `what` after `ms`. */
function blockUntil(what: string, cond: () => boolean, ms: number) {
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms while the main thread was blocked`);
    Atomics.wait(nap, 0, 0, 20);
  }
}

t0('the sweep finds a shared writable mapping of a blessed file while the main thread is blocked, and its next read is judged again', async (t) => {
  let mapper: ReturnType<typeof startChild> | undefined;
  const h = await withGate(t, 'ext4', {
    // Mapped before the guard exists: the mmap raised no event, as for a file mapped while it was silent.
    prepare: async (dir) => {
      const file = join(dir, 'mapped.bin');
      await writeFile(file, '0'.repeat(68));
      const py =
        `import mmap, os, sys, time\nfd = os.open(${JSON.stringify(file)}, os.O_RDWR)\nm = mmap.mmap(fd, 68, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)\n` +
        `os.close(fd)\nprint('mapped', flush=True)\nt = time.time() + 20\nwhile not os.path.exists(${JSON.stringify(join(dir, 'go'))}):\n  if time.time() > t: sys.exit(9)\n  time.sleep(0.01)\n`;
      mapper = startChild('python3', ['-u', '-c', py], 60_000);
      let out = '';
      mapper.child.stdout!.on('data', (d: string) => (out += d));
      await waitFor('the mapper to map the file', () => out.includes('mapped'), 30_000);
    },
    onEvent: (e, hh) => {
      if (e.kind === 'perm') hh.gate.native.answer(e.id, FAN_ALLOW);
    },
  });
  t.teardown(() => mapper?.child.kill('SIGKILL'));
  const file = join(h.scratch.dir, 'mapped.bin');
  const perms = () => h.events.filter((e) => e.kind === 'perm' && e.ino === statSync(file).ino).length;

  // Blessed: an ignore mark; a read by another process raises no event.
  const fd = openSync(file, 'r');
  h.gate.native.bless(fd);
  closeSync(fd);
  t.is((await runChild('cat', [file])).stdout, '0'.repeat(68));
  await h.settle();
  t.is(perms(), 0, 'the blessed file is silent');

  const before = h.gate.native.stats();
  h.gate.native.sharedMapSweep({ periodMs: 50, devs: [statSync(h.scratch.dir).dev] });
  // The JS main thread never turns its event loop here: only a sweep on another thread can move these counters.
  // (A mapping is counted as the sweep finds it, the sweep itself once it is through: wait for both.)
  const through = () => {
    const s = h.gate.native.stats();
    return s.sharedMapsSwept > before.sharedMapsSwept && s.sharedMapSweeps > before.sharedMapSweeps;
  };
  blockUntil('a sweep that finds the mapping', through, 20_000);
  const found = h.gate.native.stats();
  t.true(found.sharedMapSweepProcesses > 1, 'it read other processes too');

  t.is((await runChild('cat', [file])).stdout, '0'.repeat(68));
  await h.settle();
  t.true(perms() >= 1, 'its ignore mark is gone: the read was judged again');
  t.true(h.gate.native.stats().sharedMapRejudged >= 1);

  // The mapping ends: a sweep after that finds none.
  await writeFile(join(h.scratch.dir, 'go'), '');
  t.is((await within('the mapper to exit', mapper!.done, 20_000)).code, 0);
  const exited = h.gate.native.stats().sharedMapSweeps;
  await waitFor('a sweep after the mapper exited', () => h.gate.native.stats().sharedMapSweeps >= exited + 2, 10_000);
  t.is(h.gate.native.stats().sharedMapSweepMappings, 0, 'no shared writable mapping of a guarded file is left');
});

t0('the sweep only looks at the devices it is given, and close() stops it', async (t) => {
  const h = await withGate(t, 'ext4', { onEvent: (e, hh) => e.kind === 'perm' && hh.gate.native.answer(e.id, FAN_ALLOW) });
  t.throws(() => h.gate.native.sharedMapSweep({ periodMs: 0, devs: [] }), { message: /periodMs/ });
  h.gate.native.sharedMapSweep({ periodMs: 20, devs: [statSync(h.scratch.dir).dev] });
  await waitFor('two sweeps', () => h.gate.native.stats().sharedMapSweeps >= 2, 10_000);
  t.is(h.gate.native.stats().sharedMapSweepMappings, 0);
  const t1 = performance.now();
  h.gate.close();
  t.true(performance.now() - t1 < 1500, 'close() does not wait on the sweep for more than its bound');
});
