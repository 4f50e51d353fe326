// The native gate fails closed (issues 9.2, 9.3, 10.3): overload and a uid past its share get a retryable refusal,
// never the deadline's answer; opens held by one uid hold nothing of the gate; a deadline never releases a
// cached deny; once an access had its deadline answer, its later events get it at once; every such answer reaches JS
// as a fallback record. Real fanotify on a private ext4 mount; the accessors are a real unprivileged user.
import test from 'ava';
import { writeFile, chown } from 'node:fs/promises';
import { join } from 'node:path';
import { FAN_ALLOW, FAN_DENY, MASK, type GateEvent } from '../src/gate/types.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { runChild } from './helpers/child.js';
import { withGate, type Harness } from './helpers/gate-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, waitHeld } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const EAGAIN_TEXT = /Resource temporarily unavailable/;

const isPerm = (e: GateEvent) => e.kind === 'perm' && (e.mask & MASK.PRE_ACCESS) !== 0;

// The deadline of the tests that never answer some events; "at once" is anything well before it (a loaded machine
// may take seconds to start a process), so refusals at once and answers at the deadline cannot be confused.
const DEADLINE_MS = 15_000;
const AT_ONCE_MS = DEADLINE_MS / 2;

async function files(h: Harness, prefix: string, n: number, uid: number, gid: number, body = (i: number) => `${prefix} ${i}\n`) {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(h.scratch.dir, `${prefix}${i}`);
    await writeFile(p, body(i));
    await chown(p, uid, gid);
    out.push(p);
  }
  return out;
}

t0("one uid past its share gets EAGAIN at once, never content; another uid's read is still judged", async (t) => {
  let attackerUid = -1;
  const h = await withGate(t, 'ext4', {
    deadlineMs: DEADLINE_MS,
    maxPending: 16,
    maxPendingPerUid: 4,
    deadlineAnswer: 'allow', // even so: a refusal for overload is never the deadline's answer
    onEvent: (e, hh) => {
      if (e.kind === 'perm' && e.uid !== attackerUid) hh.gate.native.answer(e.id, FAN_ALLOW);
    },
  });
  await openToEveryone(h.scratch.dir);
  const atk = await makeAttacker(t);
  attackerUid = atk.uid;
  const mine = await files(h, 'secret', 8, atk.uid, atk.gid, (i) => `classified ${i}\n`);
  const held = mine.map((p) => atk.start('cat', [p]));
  await waitFor('four held reads of the attacker', () => h.events.filter((e) => isPerm(e) && e.uid === atk.uid).length >= 4);
  await waitFor('four refusals past the share', () => h.gate.native.stats().answeredUidShare >= 4);
  await waitFor('four cats telling EAGAIN', () => held.filter((c) => EAGAIN_TEXT.test(c.output())).length >= 4);
  const finished = new Set<number>();
  for (const c of held) void c.done.then(() => finished.add(c.pid));
  const inShare = held.filter((c) => !EAGAIN_TEXT.test(c.output()));
  for (const c of inShare) await waitHeld(c.pid, 'a read within the share, never answered', { syscall: 'read' });
  t.is(inShare.filter((c) => !finished.has(c.pid)).length, 4, 'four reads are still held (nobody answered them)');
  t.is(held.filter((c) => EAGAIN_TEXT.test(c.output())).length, 4, 'exactly four got EAGAIN: ' + held.map((c) => c.output()).join('|'));
  for (const c of held) t.false(c.output().includes('classified'), 'no content past the share');
  t.is(h.events.filter((e) => isPerm(e) && e.uid === atk.uid).length, 4, 'JS never saw the refused ones');

  const other = join(h.scratch.dir, 'other.txt');
  await writeFile(other, 'other user\n');
  const r = await runChild('cat', [other], { timeoutMs: DEADLINE_MS * 2 });
  t.is(r.stdout, 'other user\n');
  t.true(r.ms < AT_ONCE_MS, `another uid waited ${r.ms} ms (the deadline is ${DEADLINE_MS} ms)`);

  // Fallback records reach JS after the native thread answered: the accessor may be done before its record arrives.
  await waitFor('a fallback record of the uid-share refusals', () => h.events.some((e) => e.kind === 'fallback' && e.why === 'uid-share'));
  const records = h.events.filter((e) => e.kind === 'fallback' && e.why === 'uid-share');
  t.true(records.length >= 1 && records.length <= 20, `fallback records: ${records.length}`);
  t.is(records[0]!.uid, atk.uid);
  t.regex(records[0]!.exe ?? '', /cat$/);
  t.regex(records[0]!.path ?? '', /secret\d$/);
  for (const c of held) c.kill();
});

t0('opens held by one uid hold nothing of the gate (read mode raises no open event); past maxPending the answer is EAGAIN, not the deadline answer', async (t) => {
  let attackerUid = -1;
  const h = await withGate(t, 'ext4', {
    deadlineMs: DEADLINE_MS,
    maxPending: 8,
    maxPendingPerUid: 8,
    deadlineAnswer: 'allow',
    onEvent: (e, hh) => {
      if (e.kind === 'perm' && e.uid !== attackerUid) hh.gate.native.answer(e.id, FAN_ALLOW);
    },
  });
  await openToEveryone(h.scratch.dir);
  const atk = await makeAttacker(t);
  attackerUid = atk.uid;
  const opened = await files(h, 'o', 40, atk.uid, atk.gid);
  // 40 opens held by the attacker, five times the cap: none of them is an event, so none holds an fd of the gate.
  const holder = atk.start('python3', ['-c', `import os,sys,time\nfds=[os.open(p, os.O_RDONLY) for p in ${JSON.stringify(opened)}]\nprint('held', len(fds), flush=True)\ntime.sleep(60)`]);
  await waitFor('the attacker holding 40 opens', () => holder.output().includes('held 40'));
  await h.settle(); // anything those opens raised has reached the gate
  const s0 = h.gate.native.stats();
  t.is(s0.events.openPerm, 0, 'the opens raised no event');
  t.is(s0.heldFds, 0, 'and hold no fd of the gate');
  const victim = join(h.scratch.dir, 'victim.txt');
  await writeFile(victim, 'victim\n');
  const r = await runChild('cat', [victim], { timeoutMs: DEADLINE_MS * 2 });
  t.is(r.stdout, 'victim\n', 'the read was judged by JS, not refused for held notices');
  t.true(r.ms < AT_ONCE_MS, `judged at once (${r.ms} ms), not at the deadline`);
  t.is(h.gate.native.stats().answeredOverload, 0);

  // Now fill the cap with held permission events: the next read anywhere is refused (EAGAIN), never allowed.
  const mine = await files(h, 's', 10, atk.uid, atk.gid);
  const held = mine.map((p) => atk.start('cat', [p]));
  await waitFor('eight held reads', () => h.gate.native.stats().pendingNow >= 8);
  const late = join(h.scratch.dir, 'late.txt');
  await writeFile(late, 'late secret\n');
  const r2 = await runChild('cat', [late], { timeoutMs: DEADLINE_MS * 2 });
  t.regex(r2.stderr, EAGAIN_TEXT);
  t.is(r2.stdout, '');
  t.true(r2.ms < AT_ONCE_MS, `refused at once, not at the deadline (${r2.ms} ms)`);
  t.true(h.gate.native.stats().answeredOverload >= 1);
  await waitFor('the fallback record of the overload refusal', () => h.events.some((e) => e.kind === 'fallback' && e.why === 'overload' && e.path === late));
  for (const c of held) c.kill();
  holder.kill();
});

t0('a deadline never releases a cached deny, even with deadlineAnswer allow; the answer is reported', async (t) => {
  const h = await withGate(t, 'ext4', {
    deadlineMs: 400,
    deadlineAnswer: 'allow',
    // The verdict arrives in the native table, but this waiter is never answered by JS (a stuck main thread).
    onEvent: (e, hh) => {
      if (isPerm(e)) hh.gate.native.condemn(e.fd, FAN_DENY);
    },
  });
  const bad = join(h.scratch.dir, 'bad.txt');
  await writeFile(bad, 'denied content\n');
  const r = await runChild('cat', [bad], { timeoutMs: 20_000 });
  t.regex(r.stderr, /Operation not permitted/);
  t.is(r.stdout, '');
  t.true(r.ms >= 350, `answered by the deadline (${r.ms} ms)`);
  t.is(h.gate.native.stats().deadlineKeptDeny, 1);
  await waitFor('a fallback record for the deadline answer', () => h.events.some((e) => e.kind === 'fallback' && e.why === 'deadline'));
  const rec = h.events.find((e) => e.kind === 'fallback' && e.why === 'deadline');
  t.truthy(rec, 'a fallback record for the deadline answer');
  t.is(rec!.path, bad);
  t.regex(rec!.exe ?? '', /cat$/);
  t.is(rec!.response, FAN_DENY);
});

t0("the deadline's retry answer is EAGAIN, and it bounds an access: a retrying reader waits about one deadline", async (t) => {
  const h = await withGate(t, 'ext4', { deadlineMs: 500, deadlineAnswer: 'retry' }); // JS never answers
  const big = join(h.scratch.dir, 'big.bin');
  await writeFile(big, Buffer.alloc(4 << 20, 0x61));
  // A reader that retries EAGAIN, as NFS clients do: 40 tries in all.
  const py = `import os,sys,errno,time\nt0=time.time()\nfd=os.open(${JSON.stringify(big)},os.O_RDONLY)\ntries=0\nts=[]\nwhile tries<40:\n  try:\n    os.pread(fd,65536,0); print('read'); sys.exit(0)\n  except OSError as e:\n    assert e.errno==errno.EAGAIN, e\n    tries+=1; ts.append(round((time.time()-t0)*1000))\nprint('gave up', tries, ts)`;
  const r = await runChild('python3', ['-c', py], { timeoutMs: 60_000 });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /gave up 40/);
  // Timed inside the reader (this machine may be loaded: python alone can take seconds to start).
  const times = JSON.parse(r.stdout.slice(r.stdout.indexOf('['))) as number[];
  t.true(times[0]! >= 450, `the first try waited for the deadline (${times[0]} ms)`);
  t.true(times[39]! - times[0]! < 2_000, `the 39 retries after it took ${times[39]! - times[0]!} ms (one wait each would be 19.5 s)`);
  t.true(h.gate.native.stats().answeredAccessDeadline >= 30);
});

t0('with deadlineAnswer allow, cat of a 4 MiB unjudged file costs one deadline, not one per read', async (t) => {
  const h = await withGate(t, 'ext4', { deadlineMs: 500, deadlineAnswer: 'allow' }); // JS never answers
  const big = join(h.scratch.dir, 'big.bin');
  await writeFile(big, Buffer.alloc(4 << 20, 0x62));
  // The same pipeline on an unguarded copy, just before: what starting it costs on this machine right now.
  const free = join(h.scratch.base, 'big.bin');
  await writeFile(free, Buffer.alloc(4 << 20, 0x62));
  const base = await runChild('sh', ['-c', `cat ${free} | wc -c`], { timeoutMs: 30_000 });
  const r = await runChild('sh', ['-c', `cat ${big} | wc -c`], { timeoutMs: 30_000 });
  t.is(r.stdout.trim(), String(4 << 20));
  t.true(r.ms < base.ms + 4 * 500, `cat took ${r.ms} ms, ${base.ms} ms unguarded (one 500 ms deadline per read would be ~16 s)`);
  t.true(h.gate.native.stats().answeredAccessDeadline >= 1);
  await waitFor('a fallback record of the access deadline', () => h.events.some((e) => e.kind === 'fallback' && e.why === 'access-deadline'));
});
