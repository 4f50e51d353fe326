// Lease holders: a lease names host, pid, process start time and boot id; a lease of this host whose process is
// gone is void at once, whatever its time says. Old leases (host:pid only) still parse and are judged by the pid.
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { encodeTag } from '../src/tags/codec.js';
import { holderState, parseHolder, processStartTime, selfHolder } from '../src/tags/holder.js';
import { judgeTag } from '../src/tags/judge.js';

const key = randomBytes(32);
const stamp = { ino: 7n, igen: 1, size: 4n, mtimeNs: 1n };
const NAME = 'trusted.scanned-by.clamav';
const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();

function judgeLease(holder: string) {
  const now = Date.now();
  const raw = encodeTag({ kind: 'scanning', token: 'ab'.repeat(16), holder, leaseUntil: now + 300_000, stamp, time: now }, key, NAME, 'clamav');
  return judgeTag({ name: NAME, namespace: 'trusted', scanner: 'clamav', raw, key, stamp, generations: {}, now, holderState: (h) => holderState(h) });
}

/** A pid that existed and is gone now: a child we started and reaped. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((r) => child.on('exit', r));
  return child.pid!;
}

test('this process names itself with pid, start time and boot id, and is alive', (t) => {
  const me = selfHolder();
  t.deepEqual(parseHolder(me), { host: hostname(), pid: process.pid, start: processStartTime(process.pid)!, bootId: boot });
  t.is(holderState(me), 'alive');
  t.is(judgeLease(me).judgement, 'scanning-live');
});

test("a lease of this host whose process is gone, or whose pid was reused by another process, is void at once", async (t) => {
  const gone = await deadPid();
  const dead = judgeLease(`${hostname()}:${gone}:12345:${boot}`);
  t.is(dead.judgement, 'scanning-expired');
  t.regex(dead.detail ?? '', /which is gone/);
  // Our own pid with another start time: the pid was reused, the holder is gone.
  t.is(judgeLease(`${hostname()}:${process.pid}:1:${boot}`).judgement, 'scanning-expired');
  // Written before this host last booted.
  t.is(judgeLease(`${hostname()}:${process.pid}:${processStartTime(process.pid)}:00000000-0000-4000-8000-000000000000`).judgement, 'scanning-expired');
});

test('old host:pid leases still parse: a dead pid of this host is gone, a live one is taken as alive; other hosts are foreign', async (t) => {
  const gone = await deadPid();
  t.is(judgeLease(`${hostname()}:${gone}`).judgement, 'scanning-expired');
  t.is(judgeLease(`${hostname()}:${process.pid}`).judgement, 'scanning-live');
  t.is(holderState('another-host:1'), 'foreign');
  t.is(judgeLease('another-host:1').judgement, 'scanning-live');
  t.is(judgeLease(`another-host:1:99:${boot}`).judgement, 'scanning-live', 'a lease of another host is never judged by our pids');
  t.is(holderState('not a holder at all'), 'foreign');
});
