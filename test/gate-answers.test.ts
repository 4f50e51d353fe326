// JS's answers are claimed on the main thread and written by the gate's answer thread (native/fanotify/answers.cc):
// real fanotify on a private ext4 image, real reader processes.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { closeSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { FAN_ALLOW, FAN_DENY, MASK, type GateEvent, type NativeGate } from '../src/gate/types.js';
import { withGate } from './helpers/gate-harness.js';
import { runChild, startChild } from './helpers/child.js';
import { waitFor, within } from './helpers/wait.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('gate answer tests skipped: they need root (fanotify permission events, mounts)');

/** Tens of ms of work queued for the answer thread (blesses of a file of our own): what JS answers next is still queued. */
function backlog(gate: NativeGate, path: string) {
  const busy = openSync(path, 'r');
  try {
    for (let i = 0; i < 2000; i++) gate.queueBless(busy);
  } finally {
    closeSync(busy);
  }
}

const reads = (events: GateEvent[]) => events.filter((e) => e.kind === 'perm' && (e.mask & MASK.PRE_ACCESS) !== 0);

t0('all waiters of one file answered in one JS turn get that answer once; a second answer is refused', async (t) => {
  const h = await withGate(t, 'ext4', { prepare: async (d) => void (await Promise.all([writeFile(join(d, 'one.txt'), 'secret\n'), writeFile(join(d, 'busy'), 'busy\n')])) });
  const file = join(h.scratch.dir, 'one.txt');
  const runs = [1, 2, 3].map(() => runChild('cat', [file]));
  await waitFor('three held reads', () => reads(h.events).length >= 3);
  const before = h.gate.native.stats().answeredByJs;
  backlog(h.gate.native, join(h.scratch.dir, 'busy'));
  const ids = reads(h.events).map((e) => e.id);
  for (const id of ids) t.true(h.gate.native.answer(id, FAN_DENY), 'claimed by this answer');
  // Counted at the claim, before the write (still queued behind the backlog): what the answer wakes may read the stats at once.
  t.is(h.gate.native.stats().answeredByJs, before + 3);
  for (const id of ids) t.false(h.gate.native.answer(id, FAN_ALLOW), 'an event answered already is not answered again');
  const results = await within('the denied readers', Promise.all(runs));
  for (const r of results) {
    t.regex(r.stderr, /Operation not permitted/);
    t.is(r.stdout, '');
  }
  // The answer thread closes the event fds after it wrote their answers.
  await waitFor('no permission event fd held', () => h.gate.native.stats().heldFds === 0);
  t.is(h.gate.native.stats().pendingNow, 0);
});

t0('close() right after JS answered writes those answers as given (a deny stays a deny); the rest get the fail-closed answer', async (t) => {
  const names = ['d0', 'd1', 'd2', 'd3', 'a0', 'a1'];
  const h = await withGate(t, 'ext4', { deadlineAnswer: 'retry', prepare: async (d) => void (await Promise.all([...names, 'busy'].map((n) => writeFile(join(d, n), `${n}\n`)))) });
  const runs = names.map((n) => runChild('cat', [join(h.scratch.dir, n)]));
  await waitFor('six held reads', () => reads(h.events).length >= names.length);
  // A backlog first (blesses of a file of our own: tens of ms of work for the answer thread), then the denies, then
  // close(), all in one turn: the denies are still queued when close() begins, and must be written as given.
  backlog(h.gate.native, join(h.scratch.dir, 'busy'));
  for (const e of reads(h.events).slice(0, 4)) t.true(h.gate.native.answer(e.id, FAN_DENY));
  h.gate.close();
  const results = await within('the readers after close', Promise.all(runs));
  const refused = results.filter((r) => /Operation not permitted/.test(r.stderr));
  const retry = results.filter((r) => /Resource temporarily unavailable/.test(r.stderr));
  t.is(refused.length, 4, 'every deny JS gave before close() holds');
  t.is(retry.length, 2, `the unjudged ones get EAGAIN from close(), not allow: ${JSON.stringify(results.map((r) => r.stderr))}`);
  for (const r of results) t.is(r.stdout, '', 'nothing served');
});

t0('queueBless before an allow: the ignore mark is in place, the next reader of the file costs no event', async (t) => {
  const h = await withGate(t, 'ext4', {
    prepare: (d) => writeFile(join(d, 'b.txt'), 'blessed\n'),
    onEvent: (e, hh) => {
      if (e.kind !== 'perm') return;
      hh.gate.native.queueBless(e.fd);
      hh.gate.native.answer(e.id, FAN_ALLOW);
    },
  });
  const file = join(h.scratch.dir, 'b.txt');
  const marks = h.gate.native.stats().ignoreMarksAdded;
  const first = await runChild('cat', [file]);
  t.is(first.stdout, 'blessed\n');
  t.is(reads(h.events).length, 1);
  await waitFor('the queued bless added its mark', () => h.gate.native.stats().ignoreMarksAdded > marks);
  const second = await runChild('cat', [file]);
  t.is(second.stdout, 'blessed\n');
  await h.settle();
  t.is(reads(h.events).length, 1, 'the second read was silenced by the ignore mark');
  t.true(h.gate.native.stats().verdictTableSize >= 1, 'and the table holds the verdict');
});

type Judged = { size: bigint; mtimeNs: bigint; ctimeNs: bigint };

/** A gate whose JS answers each read with a bless carrying the stamp `judged` makes of the file's own, then allow. */
function blessedAs(t: Parameters<typeof withGate>[0], name: string, content: string, judged: (st: Judged) => Judged) {
  return withGate(t, 'ext4', {
    deadlineAnswer: 'retry',
    prepare: (d) => writeFile(join(d, name), content),
    onEvent: (e, hh) => {
      if (e.kind !== 'perm') return;
      hh.gate.native.queueBless(e.fd, judged(fstatSync(e.fd, { bigint: true })));
      hh.gate.native.answer(e.id, FAN_ALLOW);
    },
  });
}

t0('an allow queued behind a stale bless is written as the retry answer: content the judgement did not see is not served', async (t) => {
  // What a judgement that saw other content would carry: one byte shorter (the file was written since).
  const h = await blessedAs(t, 's.txt', 'seen by nobody\n', (st) => ({ size: st.size - 1n, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs }));
  const r = await runChild('cat', [join(h.scratch.dir, 's.txt')]);
  t.is(r.stdout, '', 'served content its judgement did not see');
  t.regex(r.stderr, /Resource temporarily unavailable/);
  const s = h.gate.native.stats();
  t.true(s.blessesStale >= 1 && s.staleAllowsRefused >= 1, JSON.stringify({ stale: s.blessesStale, refused: s.staleAllowsRefused }));
  t.is(s.verdictTableSize, 0, 'nothing cached');
});

t0('after a stale bless, a later bless that is not stale lets its own allows through (the flags are cleared)', async (t) => {
  const h = await withGate(t, 'ext4', { deadlineAnswer: 'retry', prepare: (d) => writeFile(join(d, 'two.txt'), 'judged again\n') });
  const file = join(h.scratch.dir, 'two.txt');
  const first = runChild('cat', [file]);
  const second = runChild('cat', [file]);
  await waitFor('two held reads', () => reads(h.events).length >= 2);
  const [a, b] = reads(h.events);
  const st = fstatSync(a!.fd, { bigint: true });
  // The first judgement saw other content (one byte shorter): its allow is refused and the other waiter flagged.
  h.gate.native.queueBless(a!.fd, { size: st.size - 1n, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs });
  h.gate.native.answer(a!.id, FAN_ALLOW);
  const r1 = await first;
  t.regex(r1.stderr, /Resource temporarily unavailable/);
  // The second judgement saw the content as it is: its bless holds, and its allow is written as given.
  h.gate.native.queueBless(b!.fd, { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs });
  h.gate.native.answer(b!.id, FAN_ALLOW);
  const r2 = await second;
  t.is(r2.stdout, 'judged again\n', r2.stderr);
  t.is(h.gate.native.stats().staleAllowsRefused, 1);
});

t0('an allow queued behind a bless stale by ctime alone is written: our own tag writes move ctime, not the content', async (t) => {
  // What a judgement carries when a slower scanner's tag landed after it: same size and mtime, an older ctime.
  const h = await blessedAs(t, 'c.txt', 'seen and tagged since\n', (st) => ({ size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs - 1n }));
  const r = await runChild('cat', [join(h.scratch.dir, 'c.txt')]);
  t.is(r.stdout, 'seen and tagged since\n', r.stderr);
  const s = h.gate.native.stats();
  t.true(s.blessesStale >= 1, 'the bless was found stale');
  t.true(s.staleDrains >= 1, 'the change group was read up to then');
  t.is(s.staleAllowsRefused, 0, 'and its allow was not refused: no content record came');
  t.is(s.verdictTableSize, 0, 'nothing cached');
});

t0('a write whose mtime is put back, made while the judgement ran: the allow behind its stale bless is refused', async (t) => {
  // The judgement saw the file as it was; then someone wrote the same number of bytes and put mtime back (futimens):
  // size and mtime say nothing, ctime moved. The answer thread has the change group read and finds the write.
  let wrote = '';
  const h = await withGate(t, 'ext4', {
    deadlineAnswer: 'retry',
    prepare: (d) => writeFile(join(d, 'm.txt'), 'clean words\n'),
    onEvent: (e, hh) => {
      if (e.kind !== 'perm' || wrote) return;
      const st = fstatSync(e.fd, { bigint: true });
      const path = join(hh.scratch.dir, 'm.txt');
      wrote = execFileSync('python3', ['-c', `import os,sys\nfd=os.open(sys.argv[1],os.O_WRONLY)\nos.write(fd,b'WRONG words\\n')\nos.close(fd)\nos.utime(sys.argv[1],ns=(${st.atimeNs},${st.mtimeNs}))\nprint('wrote')`, path], { encoding: 'utf8' });
      const now = fstatSync(e.fd, { bigint: true });
      if (now.size !== st.size || now.mtimeNs !== st.mtimeNs || now.ctimeNs === st.ctimeNs) throw new Error('the write did not leave size and mtime as they were');
      hh.gate.native.queueBless(e.fd, { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs });
      hh.gate.native.answer(e.id, FAN_ALLOW);
    },
  });
  const r = await runChild('cat', [join(h.scratch.dir, 'm.txt')]);
  t.is(wrote.trim(), 'wrote');
  t.is(r.stdout, '', 'served content its judgement did not see');
  t.regex(r.stderr, /Resource temporarily unavailable/);
  const s = h.gate.native.stats();
  t.true(s.staleDrains >= 1 && s.staleAllowsRefused >= 1, JSON.stringify({ drains: s.staleDrains, refused: s.staleAllowsRefused, timeouts: s.staleDrainTimeouts }));
  t.is(s.staleDrainTimeouts, 0, 'the reader thread drained in time');
});

t0('JS stuck in the turn that answered: the reader thread has the answer written by its deadline, as JS gave it', async (t) => {
  // The deadline only has to be long enough for JS to claim the event first (an unanswered event would get the
  // deadline's allow); nothing below waits for the clock to pass it.
  const deadlineMs = 5000;
  const h = await withGate(t, 'ext4', { deadlineMs, deadlineAnswer: 'allow', prepare: (d) => writeFile(join(d, 'stuck.txt'), 'stuck\n') });
  const file = join(h.scratch.dir, 'stuck.txt');
  // The reader times its own read: this process cannot watch the clock while it is stuck.
  const { child, done } = startChild('python3', ['-c', `import os,sys,time\nfd=os.open(sys.argv[1],os.O_RDONLY)\nt=time.monotonic()\ntry:\n  os.read(fd,64); r='read'\nexcept OSError as e:\n  r=e.strerror\nprint(r, int((time.monotonic()-t)*1000), flush=True)`, file]);
  const ev = await h.next((e) => e.kind === 'perm' && (e.mask & MASK.PRE_ACCESS) !== 0 && e.pid === child.pid, 20_000);
  // A watcher thread wakes this one once the reader has exited (a zombie: its parent, this thread, cannot reap it
  // while stuck). It runs before the answer, so that starting it costs no turn of this loop after the answer.
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const watcher = new Worker(
    `const { workerData: { pid, flag } } = require('node:worker_threads');
     const fs = require('node:fs');
     const nap = new Int32Array(new SharedArrayBuffer(4));
     for (;;) {
       let state = 'gone';
       try { state = fs.readFileSync('/proc/' + pid + '/stat', 'utf8').replace(/^.*\\) /s, '')[0]; } catch {}
       if (state === 'Z' || state === 'gone') break;
       Atomics.wait(nap, 0, 0, 5);
     }
     Atomics.store(flag, 0, 1);
     Atomics.notify(flag, 0);`,
    { eval: true, workerData: { pid: child.pid, flag } },
  );
  t.teardown(() => void watcher.terminate());
  await within('the watcher thread', new Promise((resolve, reject) => watcher.once('online', resolve).once('error', reject)));
  t.true(h.gate.native.answer(ev.id, FAN_DENY), 'JS claimed the event before its deadline');
  // Stuck in this very turn until the reader has its answer: neither the loop's check nor its prepare handle runs
  // meanwhile, so only the reader thread's kick at the deadline can get JS's deny written. Without it the reader
  // stays held, and this wait ends at its bound ('timed-out') instead of by the watcher's notify ('ok').
  const woke = Atomics.wait(flag, 0, 0, 30_000);
  t.is(woke, 'ok', 'the reader got its answer while JS was still stuck in the turn that gave it');
  const r = await within('the stuck reader', done);
  const [, what, ms] = /^(.*) (\d+)$/.exec(r.stdout.trim()) ?? [];
  t.is(what, 'Operation not permitted', 'JS\'s deny, not the deadline\'s allow');
  // A lower bound only (load can only make it later): the deny was written at the deadline, not before it.
  t.true(Number(ms) >= deadlineMs - 1, `answered after ${ms} ms: at the deadline (${deadlineMs} ms), not before`);
});
