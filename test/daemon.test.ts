// The daemon end to end: real gate, real tags, real scanners in the pool, real child processes.
import test from 'ava';
import { writeFile, chmod, copyFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { native } from '../src/gate/addon.js';
import { EICAR } from '../src/daemon/demo.js';
import { runChild, startChild } from './helpers/child.js';
import { withDaemon, FIXTURES, REPO } from './helpers/daemon-harness.js';
import { lineChild } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, waitHeld, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('daemon tests skipped: they need root');

const denied = /Operation not permitted/;
// A deny that rests on a failure (timeout, crash, no scanner) is the retryable errno: nothing judged the content.
const retried = /Resource temporarily unavailable/;

/** A private temp dir for one test's own files (databases...), removed at teardown. */
function h0(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-t-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

for (const fs of ['ext4', 'tmpfs'] as const) {
  t0(`${fs}: EICAR is refused to cat, python, node, mmap and exec; clean files read`, async (t) => {
    const db = join(h0(t), 'marker.ndb'); // a body signature at any offset, for the script below
    await writeFile(db, `Test.Marker:0:*:${Buffer.from('BLESSD-TEST-MARKER').toString('hex')}\n`);
    const h = await withDaemon(t, fs, {
      stack: `  - actor: signature
    options: { databases: [${join(process.cwd(), 'signatures')}, ${db}] }
  - actor: default
    options: { answer: allow }`,
      prepare: async (d) => {
        await writeFile(join(d, 'eicar.com'), EICAR);
        await writeFile(join(d, 'clean.txt'), 'clean\n');
        await writeFile(join(d, 'eicar.sh'), `#!/bin/sh\n# BLESSD-TEST-MARKER\necho ran\n`);
        await chmod(join(d, 'eicar.sh'), 0o755);
        await copyFile('/bin/true', join(d, 'true'));
        await chmod(join(d, 'true'), 0o755);
      },
    });
    const bad = join(h.dir, 'eicar.com');
    t.regex((await runChild('cat', [bad])).stderr, denied);
    const py = await runChild('python3', ['-c', `import sys\ntry:\n open(${JSON.stringify(bad)},'rb').read()\nexcept OSError as e:\n print(e.errno); sys.exit(3)`]);
    t.is(py.stdout.trim(), '1');
    const node = await runChild('node', ['-e', `try{require('fs').readFileSync(${JSON.stringify(bad)})}catch(e){console.log(e.code)}`]);
    t.is(node.stdout.trim(), 'EPERM');
    const mm = await runChild('python3', ['-c', `import mmap,os\ntry:\n fd=os.open(${JSON.stringify(bad)},os.O_RDONLY)\n mmap.mmap(fd,0,prot=mmap.PROT_READ)\n print('mapped')\nexcept OSError as e:\n print(e.errno)`]);
    t.is(mm.stdout.trim(), '1');
    const ex = await runChild('sh', ['-c', `${join(h.dir, 'eicar.sh')}; echo rc=$?`]);
    t.notRegex(ex.stdout, /ran/);
    t.regex(ex.stdout, /rc=12[67]/);
    t.is((await runChild('cat', [join(h.dir, 'clean.txt')])).stdout, 'clean\n');
    t.regex((await runChild('sh', ['-c', `${join(h.dir, 'true')}; echo rc=$?`])).stdout, /rc=0/);
    t.true(h.daemon.stats().verdicts.deny >= 2);
  });

  t0(`${fs}: a blessed file carries its tags, raises no further events, and rewritten to EICAR is refused`, async (t) => {
    const h = await withDaemon(t, fs, { notices: true, prepare: (d) => writeFile(join(d, 'doc.txt'), 'fine\n') });
    const file = join(h.dir, 'doc.txt');
    t.is((await runChild('cat', [file])).stdout, 'fine\n');
    const names = native.listXattr(file);
    t.true(names.includes('trusted.scanned-by.signature'), names.join(','));
    t.false(names.includes('trusted.scanned-by.default'), 'the constant default needs no tag');
    // The native counters move when the reader thread reads an event, and every event of that cat was a permission
    // event it had to answer before cat could go on: nothing of it can arrive later.
    const s1 = h.daemon.stats();
    for (let i = 0; i < 5; i++) t.is((await runChild('cat', [file])).stdout, 'fine\n');
    const s2 = h.daemon.stats();
    const events = (s: typeof s1) => s.gate.events.openPerm + s.gate.events.preAccess + s.gate.events.openNotice;
    t.is(events(s2), events(s1), 'blessed: the kernel stays silent');
    // No pause after the write: the kernel dropped the ignore mark at the write itself, and the native reader reads
    // pending changes before it trusts a cached verdict.
    await runChild('sh', ['-c', `printf '%s' '${EICAR}' > ${file}`]);
    t.regex((await runChild('cat', [file])).stderr, denied);
    t.regex(native.getXattr(file, 'trusted.scanned-by.signature')?.toString() ?? '', /^v1 deny /, 'the new verdict is on disk');
    await waitFor('the dirty notice of the rewrite', () => h.notices.some((n) => n.event === 'dirty' && n['path'] === file));
  });
}

t0('a change during a scan is never blessed', async (t) => {
  const base = h0(t);
  const scanned = join(base, 'scanned');
  const release = join(base, 'release');
  const h = await withDaemon(t, 'ext4', {
    stack: `  - actor: ${join(FIXTURES, 'word-actor.js')}
    name: word
    options: { word: BAD, counter: ${scanned}, holdUntil: ${release} }
  - actor: default
    options: { answer: allow }`,
    prepare: (d) => writeFile(join(d, 'f.txt'), 'good\n'),
  });
  const file = join(h.dir, 'f.txt');
  const reader = startChild('cat', [file]);
  // The scan has read "good" (it says so in its counter) and is held until we release it.
  await waitFor('the scan to have read the file', () => existsSync(scanned) && readFileSync(scanned, 'utf8').includes(file));
  await appendFile(file, 'BAD\n'); // our own write: not gated, but a content change like any other
  writeFileSync(release, ''); // the stale scan answers "ok" now; every later scan runs at once
  const r = await reader.done;
  t.regex(r.stderr, denied, `cat must not see the old verdict: ${r.stdout}`);
  t.regex((await runChild('cat', [file])).stderr, denied);
});

t0('after a restart blessed files are not rescanned; files changed while it was down are', async (t) => {
  const h = await withDaemon(t, 'ext4', {
    prepare: async (d) => {
      for (let i = 0; i < 5; i++) await writeFile(join(d, `k${i}.txt`), `keep ${i}\n`);
    },
  });
  for (let i = 0; i < 5; i++) await runChild('cat', [join(h.dir, `k${i}.txt`)]);
  t.is(h.daemon.stats().scans.signature, 5);
  await h.stop();
  await writeFile(join(h.dir, 'k4.txt'), EICAR); // while no daemon watches
  await h.restart();
  for (let i = 0; i < 4; i++) t.is((await runChild('cat', [join(h.dir, `k${i}.txt`)])).stdout, `keep ${i}\n`);
  t.is(h.daemon.stats().scans.signature ?? 0, 0, 'valid tags: nothing rescanned');
  t.regex((await runChild('cat', [join(h.dir, 'k4.txt')])).stderr, denied);
  t.is(h.daemon.stats().scans.signature, 1);
});

t0('two required scanners: one denies, the file is denied; a sufficient allow short-circuits; observe never blocks', async (t) => {
  // Each slow scanner sleeps only on the files it matches, so each bound below is that scanner's whole sleep, not a
  // difference of two sleeps: seconds of room for a loaded machine, and still well short of what waiting would cost.
  const OBSERVE_MS = 4000;
  const SLOW_MS = 3000;
  const h = await withDaemon(t, 'ext4', {
    stack: `  - actor: ${join(FIXTURES, 'word-actor.js')}
    name: vouch
    control: sufficient
    options: { word: TRUSTED, answer: allow }
  - actor: ${join(FIXTURES, 'word-actor.js')}
    name: indexer
    control: observe
    options: { word: ZZZ, ms: ${OBSERVE_MS}, sleepOnlyIfFound: true }
  - actor: signature
    options: { databases: [${join(process.cwd(), 'signatures')}] }
  - actor: ${join(FIXTURES, 'word-actor.js')}
    name: slow
    options: { word: SECRET, ms: ${SLOW_MS}, sleepOnlyIfFound: true }
  - actor: default
    options: { answer: allow }`,
    prepare: async (d) => {
      await writeFile(join(d, 'secret.txt'), 'SECRET\n');
      await writeFile(join(d, 'trusted.txt'), `TRUSTED SECRET\n`);
      await writeFile(join(d, 'plain.txt'), 'plain ZZZ\n');
    },
  });
  const plain = await runChild('cat', [join(h.dir, 'plain.txt')]);
  t.is(plain.stdout, 'plain ZZZ\n');
  t.true(plain.ms < OBSERVE_MS, `the observe scanner (${OBSERVE_MS} ms on this file) did not hold the read: ${plain.ms} ms`);
  const fast = await runChild('cat', [join(h.dir, 'trusted.txt')]);
  t.is(fast.stdout, 'TRUSTED SECRET\n', 'sufficient allow wins over the later required deny');
  t.true(fast.ms < SLOW_MS, `not waiting for the slow scanner (${SLOW_MS} ms on this file): ${fast.ms} ms`);
  t.regex((await runChild('cat', [join(h.dir, 'secret.txt')])).stderr, denied);
});

t0('a crashing or hanging scanner gets its configured answer and the daemon lives on', async (t) => {
  const h = await withDaemon(t, 'tmpfs', {
    stack: `  - actor: ${join(FIXTURES, 'throwing-actor.js')}
    name: crashy
    control: optional
    onError: ok
  - actor: ${join(FIXTURES, 'hanging-actor.js')}
    name: hangs
    onTimeout: deny
  - actor: default
    options: { answer: allow }`,
    extra: '',
    prepare: (d) => writeFile(join(d, 'x.txt'), 'x\n'),
  });
  const r = await runChild('cat', [join(h.dir, 'x.txt')], { timeoutMs: 15_000 });
  t.regex(r.stderr, retried, 'the hanging scanner timed out: deny, retryable');
  t.true(r.ms < 9000);
  await writeFile(join(h.dir, 'y.txt'), 'y\n');
  const again = await runChild('cat', [join(h.dir, 'y.txt')], { timeoutMs: 15_000 });
  t.regex(again.stderr, retried, 'still answering after a worker was destroyed');
  t.is(h.daemon.stats().errors, 0);
});

t0('1,000 files opened in parallel by several processes are all answered', async (t) => {
  const h = await withDaemon(t, 'ext4', {
    prepare: async (d) => {
      for (let i = 0; i < 1000; i++) await writeFile(join(d, `p${i}`), i % 100 === 7 ? EICAR : `file ${i}\n`);
    },
  });
  // Four readers, each one process reading its 250 files in turn: a thousand `cat` spawns cost a loaded 2-core
  // machine more than the daemon's work, and ran into the test's bound. Each read is still a real open and read.
  const reader = `import os,sys\nfor i in range(int(sys.argv[1]),1000,4):\n try:\n  with open(f'p{i}','rb') as f: f.read()\n  print('ok')\n except PermissionError:\n  print('no')`;
  const procs = [0, 1, 2, 3].map((k) => runChild('python3', ['-c', reader, String(k)], { cwd: h.dir, timeoutMs: 80_000 }));
  const results = await Promise.all(procs);
  for (const r of results) t.is(r.code, 0, r.stderr);
  const lines = results.flatMap((r) => r.stdout.trim().split('\n'));
  t.is(lines.length, 1000);
  t.is(lines.filter((l) => l === 'no').length, 10);
  t.is(h.daemon.stats().gate.answeredByDeadline, 0);
});

t0('the background crawl blesses files before anyone opens them', async (t) => {
  const h = await withDaemon(t, 'ext4', {
    extra: 'crawl: { enabled: true, filesPerSecond: 1000, pauseOnBattery: false }',
    prepare: async (d) => {
      const { mkdir } = await import('node:fs/promises');
      await mkdir(join(d, 'sub'));
      for (let i = 0; i < 20; i++) await writeFile(join(d, i % 2 ? 'sub' : '', `c${i}.txt`), `crawl ${i}\n`);
      await writeFile(join(d, 'sub', 'bad.com'), EICAR);
    },
  });
  await waitFor('the crawl to finish', () => h.daemon.stats().crawl?.running === false, 30_000);
  t.is(h.daemon.stats().crawl?.visited, 21);
  const scansAfterCrawl = h.daemon.stats().scans.signature;
  t.is(scansAfterCrawl, 21);
  t.regex(native.getXattr(join(h.dir, 'sub', 'c1.txt'), 'trusted.scanned-by.signature')?.toString() ?? '', /^v1 ok /);
  t.is((await runChild('cat', [join(h.dir, 'sub', 'c1.txt')])).stdout, 'crawl 1\n');
  t.regex((await runChild('cat', [join(h.dir, 'sub', 'bad.com')])).stderr, denied);
  t.is(h.daemon.stats().scans.signature, scansAfterCrawl, 'reads found verdicts: no new scans');
});

t0('reload swaps the stack; a bad one keeps the old', async (t) => {
  const h = await withDaemon(t, 'tmpfs', { prepare: (d) => writeFile(join(d, 'r.txt'), 'RELOAD-ME\n') });
  const { parseConfig } = await import('../src/config/index.js');
  const yaml = (stack: string) => `stateDir: ${h.state}\nguards: [{ path: ${h.dir}, kind: filesystem }]\nsocket: { path: ${join(h.scratch.base, 's')} }\nstack:\n${stack}`;
  const bad = parseConfig(yaml(`  - actor: ${join(FIXTURES, 'not-an-actor.js')}\n    name: broken`), join(h.scratch.base, 'c.yaml'));
  t.is((await runChild('cat', [join(h.dir, 'r.txt')])).stdout, 'RELOAD-ME\n', 'the shipped stack passes it');
  await t.throwsAsync(() => h.daemon.reload(bad), { message: /not an actor module/ });
  t.is((await runChild('cat', [join(h.dir, 'r.txt')])).stdout, 'RELOAD-ME\n', 'the old stack still judges');
  const strict = parseConfig(
    yaml(`  - actor: ${join(FIXTURES, 'word-actor.js')}\n    name: word\n    options: { word: RELOAD-ME }\n  - actor: default\n    options: { answer: allow }`),
    join(h.scratch.base, 'c.yaml'),
  );
  await h.daemon.reload(strict);
  t.regex((await runChild('cat', [join(h.dir, 'r.txt')])).stderr, denied, 'the new stack judges');
});

t0('reload applies the stack, exempt and pool limits now, keeps start-only keys as started, and names them', async (t) => {
  const h = await withDaemon(t, 'ext4', { prepare: (d) => writeFile(join(d, 'app.log'), EICAR) });
  t.regex((await runChild('cat', [join(h.dir, 'app.log')])).stderr, denied, 'not exempt before the reload');
  const { parseConfig } = await import('../src/config/index.js');
  const next = parseConfig(
    `stateDir: ${h.state}
guards: [{ path: ${h.dir}, kind: filesystem, wait: read }]
gate: { deadline: 7s, whileWriting: wait, settleWalk: { enabled: false } }
pool: { threads: 3, scanTimeout: 9s, queuePerUid: 1024, rescanDebounce: 50ms }
socket: { path: ${join(h.scratch.base, 'blessd.sock')} }
log: { level: ${h.config.log.level} }
exempt: { paths: ["**/*.log"] }
stack:
  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: default
    options: { answer: allow }
`,
    join(h.scratch.base, 'config.yaml'),
  );
  const r = await h.daemon.reload(next);
  t.deepEqual(r.restartNeeded, ['gate.deadline', 'gate.accessDeadline', 'pool.threads'], 'accessDeadline follows deadline when not set');
  const running = h.daemon.control().config();
  t.is(running.gate.deadline, h.config.gate.deadline, 'the gate keeps its started deadline');
  t.is(running.pool.threads, 2, 'the pool keeps its started threads');
  t.is(running.pool.scanTimeout, 9000, 'a pool limit applies at once');
  t.is((await runChild('cat', [join(h.dir, 'app.log')])).stdout, EICAR, 'the new exempt path applies at once');
  t.deepEqual((await h.daemon.reload(next)).restartNeeded, ['gate.deadline', 'gate.accessDeadline', 'pool.threads'], 'still differs from what runs');
  t.deepEqual((await h.daemon.reload(h.config)).restartNeeded, [], 'the started config again: nothing waits for a restart');
});

t0('exempt paths and executables pass without a scan', async (t) => {
  const h = await withDaemon(t, 'ext4', {
    extra: `exempt:\n  paths: ["**/*.log"]\n  executables: [/usr/bin/head]`,
    prepare: async (d) => {
      await writeFile(join(d, 'app.log'), EICAR);
      await writeFile(join(d, 'x.com'), EICAR);
    },
  });
  t.is((await runChild('cat', [join(h.dir, 'app.log')])).stdout, EICAR, 'an exempt path is never gated');
  t.is((await runChild('head', ['-c', '3', join(h.dir, 'x.com')])).stdout, EICAR.slice(0, 3), 'an exempt executable reads anything');
  t.regex((await runChild('cat', [join(h.dir, 'x.com')])).stderr, denied, 'others do not');
  t.is(h.daemon.stats().scans.signature ?? 0, 1, 'only the last access was scanned');
  // The deny is known now; a deny cached on the native thread would refuse the exempt executable before it is matched.
  t.is((await runChild('head', ['-c', '3', join(h.dir, 'x.com')])).stdout, EICAR.slice(0, 3), 'exempt after a deny too');
  t.regex((await runChild('cat', [join(h.dir, 'x.com')])).stderr, denied, 'and the deny still holds for others');
});

t0('a writer costs one scan per file, after its close, and the file is blessed before anyone reads it', async (t) => {
  const h = await withDaemon(t, 'ext4');
  const r = await runChild('python3', ['-c', `import os\nfor i in range(50):\n fd=os.open('${h.dir}/n%d' % i, os.O_WRONLY|os.O_CREAT)\n os.write(fd,b'new file %d\\n' % i)\n os.close(fd)`]);
  t.is(r.code, 0, r.stderr);
  await waitFor('50 scans and no live machine', () => h.daemon.stats().machines === 0 && (h.daemon.stats().scans.signature ?? 0) >= 50, 30_000);
  // One scan per file, after its close. A writer's open can still win the race against its own fd showing in
  // /proc (we look 2 ms after the open) on a loaded machine: a few extra scans, never two per file.
  const scans = h.daemon.stats().scans.signature ?? 0;
  t.true(scans >= 50 && scans <= 55, `${scans} scans for 50 written files`);
  t.regex(native.getXattr(join(h.dir, 'n7'), 'trusted.scanned-by.signature')?.toString() ?? '', /^v1 ok /);
  t.is((await runChild('cat', [join(h.dir, 'n7')])).stdout, 'new file 7\n');
  t.is(h.daemon.stats().scans.signature, scans, 'the read found the verdict');
});

t0('a reader of a just-written file starts its rescan at once instead of waiting out the debounce', async (t) => {
  const DEBOUNCE_MS = 10_000;
  const h = await withDaemon(t, 'ext4', { debounce: `${DEBOUNCE_MS}ms`, prepare: (d) => writeFile(join(d, 'w.txt'), 'old\n') });
  const file = join(h.dir, 'w.txt');
  t.is((await runChild('cat', [file])).stdout, 'old\n');
  await runChild('sh', ['-c', `echo new > ${file}`]);
  const closed = performance.now(); // the debounce began a little before this
  // The close has reached the daemon: the file is settling, its rescan 10 s away.
  await waitFor('the written file to be settling', () => (h.daemon.stats().machineStates['settling'] ?? 0) >= 1);
  const r = await runChild('cat', [file]);
  t.is(r.stdout, 'new\n');
  // Waiting out the debounce would end ~10 s after the close; half of it leaves room for a loaded machine.
  const sinceClose = performance.now() - closed;
  t.true(sinceClose < DEBOUNCE_MS / 2, `the read ended ${sinceClose.toFixed(0)} ms after the close (cat itself ${r.ms.toFixed(0)} ms)`);
});

for (const whileWriting of ['wait', 'allow'] as const) {
  t0(`a reader of a file being written ${whileWriting === 'wait' ? 'waits for the writer to close and the rescan' : 'passes at once'} (whileWriting: ${whileWriting})`, async (t) => {
    const h = await withDaemon(t, 'ext4', { notices: true, whileWriting, prepare: (d) => writeFile(join(d, 'busy.txt'), 'v1\n') });
    const file = join(h.dir, 'busy.txt');
    t.is((await runChild('cat', [file])).stdout, 'v1\n');
    // The writer keeps its fd open until told to close (a line on its stdin): the order of events is the test.
    const writer = lineChild(t, 'python3', ['-c', `import os,sys\nfd=os.open(${JSON.stringify(file)},os.O_WRONLY|os.O_APPEND)\nos.write(fd,b'v2\\n')\nprint('wrote',flush=True)\nsys.stdin.readline()\nos.close(fd)\nprint('closed',flush=True)`]);
    await writer.waitFor((l) => l === 'wrote', 10_000, 'the write');
    await waitFor('the write to reach the daemon', () => h.notices.some((n) => n.event === 'dirty' && n['path'] === file));
    const reader = startChild('cat', [file]);
    if (whileWriting === 'wait') {
      await waitHeld(reader.child.pid!, 'the reader held while the writer is open', { syscall: ['read', 'pread64'] });
      t.is(writer.child.exitCode, null, 'the writer still holds its fd');
      writer.child.stdin!.write('close\n');
      await writer.waitFor((l) => l === 'closed', 10_000, 'the close');
      t.is((await within('the reader after the close and rescan', reader.done, 20_000)).stdout, 'v1\nv2\n');
    } else {
      t.is((await within('the reader to pass while the writer is open', reader.done, 20_000)).stdout, 'v1\nv2\n');
      t.is(writer.child.exitCode, null, 'it passed before the writer closed');
      writer.child.stdin!.write('close\n');
      await writer.waitFor((l) => l === 'closed', 10_000, 'the close');
    }
  });
}
