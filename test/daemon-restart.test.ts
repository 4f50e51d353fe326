// After a restart, files whose valid tags settle the verdict are answered by the native reader thread from their
// tags — no JS, no machine, no scan — a deny tag refuses at once (and is still logged); a generation bump or a
// changed file sends the file back to JS to be judged again.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import type { Notice } from '../src/daemon/stats.js';
import { bumpGeneration } from '../src/tags/generation.js';
import { runChild } from './helpers/child.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;

function nextNotice(h: { daemon: import('../src/daemon/daemon.js').Daemon }, match: (n: Notice) => boolean, ms = 10_000): Promise<Notice> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no matching notice within ${ms} ms`)), ms);
    const on = (n: Notice) => {
      if (!match(n)) return;
      clearTimeout(timer);
      h.daemon.off('notice', on);
      resolve(n);
    };
    h.daemon.on('notice', on);
  });
}

for (const fs of ['ext4', 'tmpfs'] as const) {
  t0(`${fs}: after a restart, tags settle files on the native thread; a deny tag refuses and is logged; a bump or a change goes back to JS`, async (t) => {
    const h = await withDaemon(t, fs, {
      wait: fs === 'tmpfs' ? 'open' : 'read',
      prepare: async (d) => {
        for (let i = 0; i < 4; i++) await writeFile(join(d, `k${i}.txt`), `keep ${i}\n`);
        await writeFile(join(d, 'bad.com'), EICAR);
      },
    });
    for (let i = 0; i < 4; i++) t.is((await runChild('cat', [join(h.dir, `k${i}.txt`)])).stdout, `keep ${i}\n`);
    t.regex((await runChild('cat', [join(h.dir, 'bad.com')])).stderr, /Operation not permitted/);
    t.is(h.daemon.stats().scans.signature, 5);

    await h.restart();
    const before = h.daemon.stats().gate;
    for (let i = 0; i < 4; i++) t.is((await runChild('cat', [join(h.dir, `k${i}.txt`)])).stdout, `keep ${i}\n`);
    const after = h.daemon.stats();
    t.is(after.gate.fastTagsAllowed - before.fastTagsAllowed, 4, 'each file settled once, from its tags, natively');
    t.is(after.gate.forwarded, before.forwarded, 'no permission event reached JS');
    t.is(after.machines, 0);
    t.is(after.scans.signature ?? 0, 0, 'nothing rescanned');

    const logged = nextNotice(h, (n) => n.event === 'verdict' && n['verdict'] === 'deny' && n['fromTags'] === true);
    t.regex((await runChild('cat', [join(h.dir, 'bad.com')])).stderr, /Operation not permitted/);
    t.true(h.daemon.stats().gate.fastTagsDenied >= 1, `refused from its deny tag on the reader thread: ${JSON.stringify(h.daemon.stats())}`);
    const n = await logged;
    t.is(n['decidedBy'], 'signature', 'the deny reached JS once, to be logged with its scanner');
    t.is(h.daemon.stats().scans.signature ?? 0, 0);

    // A bump makes every signature tag stale: the native reader must not believe them any more.
    await bumpGeneration(h.state, 'signature');
    await h.daemon.control().refreshGenerations();
    const s0 = h.daemon.stats().gate.fastTagsAllowed;
    t.is((await runChild('cat', [join(h.dir, 'k0.txt')])).stdout, 'keep 0\n');
    t.is(h.daemon.stats().gate.fastTagsAllowed, s0, 'stale generation: not settled natively');
    t.is(h.daemon.stats().scans.signature, 1, 'rescanned by JS');

    // Changed while the daemon was down: stale stamp, judged again.
    await h.stop();
    await writeFile(join(h.dir, 'k1.txt'), EICAR);
    await h.restart();
    t.regex((await runChild('cat', [join(h.dir, 'k1.txt')])).stderr, /Operation not permitted/);
    t.is(h.daemon.stats().scans.signature, 1);
  });
}
