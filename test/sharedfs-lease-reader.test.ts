// The holder rule of two daemons on one kernel (src/tags/lease-reader.ts, holder.ts: isHolderProcess), on real
// processes and real trusted.* leases on a private ext4 image: a read passes only for the very process a live,
// MAC-verified lease names — not another pid, not a reused name, not another key's lease, not an expired one; and a
// dirty clear leaves such a peer's live lease to its holder.
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { native } from '../src/gate/addon.js';
import { isHolderProcess, processStartTime, selfHolder } from '../src/tags/holder.js';
import { readsOwnLease } from '../src/tags/lease-reader.js';
import { TagStore } from '../src/tags/store.js';
import { isRoot, makeScratch } from './helpers/scratch.js';
import { REPO } from './helpers/daemon-harness.js';
import { clockPast, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const bootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();

/** A live process other than this one, killed at teardown. */
function otherProcess(t: { teardown(fn: () => void | Promise<void>): void }) {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  t.teardown(() => {
    child.kill('SIGKILL');
    return exited;
  });
  return { pid: child.pid!, stop: () => (child.kill('SIGKILL'), exited) };
}

test.serial('a holder name matches only the process it names: same pid, start time and boot', async (t) => {
  t.true(isHolderProcess(selfHolder(), process.pid));
  const other = otherProcess(t);
  const start = processStartTime(other.pid)!;
  const name = `some-other-host:${other.pid}:${start}:${bootId()}`;
  t.true(isHolderProcess(name, other.pid), 'another host name, same kernel: the same process');
  t.false(isHolderProcess(name, process.pid), 'another pid');
  t.false(isHolderProcess(selfHolder(), other.pid), "this process's name for another pid");
  t.false(isHolderProcess(`${hostname()}:${other.pid}:${Number(start) + 1}:${bootId()}`, other.pid), 'another start time: a reused pid');
  t.false(isHolderProcess(`${hostname()}:${other.pid}:${start}:00000000-0000-4000-8000-000000000000`, other.pid), 'another boot');
  t.false(isHolderProcess(`${hostname()}:${other.pid}`, other.pid), 'an old-style name cannot be checked');
  await other.stop();
  t.false(isHolderProcess(name, other.pid), 'the process is gone');
});

t0("readsOwnLease: true for the live holder of a verified lease only", async (t) => {
  const scratch = await makeScratch('ext4', 32);
  t.teardown(() => scratch.cleanup());
  const file = join(scratch.dir, 'f.txt');
  await writeFile(file, 'content\n');
  const key = randomBytes(32);
  const store = new TagStore({ namespace: 'trusted', key });
  const fd = openSync(file, 'r');
  t.teardown(() => closeSync(fd));
  t.false(readsOwnLease(store, fd, process.pid), 'no lease at all');
  const lease = store.begin(fd, 'scanner');
  if (lease.status !== 'leased') return t.fail(`begin: ${lease.status}`);
  t.true(readsOwnLease(store, fd, process.pid), 'the holder itself');
  const other = otherProcess(t);
  t.false(readsOwnLease(store, fd, other.pid), 'another process');
  t.false(readsOwnLease(new TagStore({ namespace: 'trusted', key: randomBytes(32) }), fd, process.pid), "a lease another key's daemon cannot verify");
  t.false(readsOwnLease(new TagStore({ namespace: 'user', key }), fd, process.pid), 'another namespace');
  const written = await store.finish(fd, 'scanner', lease.token, { answer: 'ok' }, 'g1');
  t.is(written.status, 'written');
  t.false(readsOwnLease(store, fd, process.pid), 'a result tag is no lease');

  const short = new TagStore({ namespace: 'trusted', key, leaseMs: 200 });
  const again = short.begin(fd, 'other-scanner');
  if (again.status !== 'leased') return t.fail(`begin: ${again.status}`);
  t.true(readsOwnLease(short, fd, process.pid));
  await clockPast(again.leaseUntil);
  t.false(readsOwnLease(short, fd, process.pid), 'an expired lease');
});

t0("a dirty clear leaves another live daemon's lease on this kernel to its holder, and removes everything else", async (t) => {
  const scratch = await makeScratch('ext4', 32);
  t.teardown(() => scratch.cleanup());
  const file = join(scratch.dir, 'f.txt');
  await writeFile(file, 'content\n');
  const key = randomBytes(32);
  const keyFile = join(scratch.base, 'tag.key');
  await writeFile(keyFile, key, { mode: 0o600 });
  // Another process (a daemon of this kernel) takes a lease on the file and keeps running.
  const script = `import { readFileSync, openSync } from 'node:fs';
import { TagStore } from ${JSON.stringify(join(REPO, 'dist/src/tags/store.js'))};
const store = new TagStore({ namespace: 'trusted', key: readFileSync(process.argv[1]) });
const r = store.begin(openSync(process.argv[2], 'r'), 'peer');
process.stdout.write(r.status + '\\n');
setInterval(() => {}, 1000);`;
  const peer = spawn(process.execPath, ['--input-type=module', '-e', script, keyFile, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => peer.on('exit', () => r()));
  t.teardown(() => (peer.kill('SIGKILL'), exited));
  const said = await within('the peer to take its lease', new Promise<string>((r) => peer.stdout!.once('data', (d: Buffer) => r(d.toString()))), 15_000);
  t.is(said.trim(), 'leased');

  const store = new TagStore({ namespace: 'trusted', key });
  const fd = openSync(file, 'r');
  t.teardown(() => closeSync(fd));
  const own = store.begin(fd, 'own');
  t.is(own.status, 'leased');
  const done = store.begin(fd, 'done');
  if (done.status !== 'leased') return t.fail(done.status);
  t.is((await store.finish(fd, 'done', done.token, { answer: 'ok' }, 'g')).status, 'written');
  const elsewhere = new TagStore({ namespace: 'trusted', key, host: 'another-host', pid: 4242 });
  t.is(elsewhere.begin(fd, 'remote').status, 'leased');

  t.deepEqual(store.clear(fd).sort(), ['trusted.scanned-by.done', 'trusted.scanned-by.own', 'trusted.scanned-by.remote']);
  t.regex(native.getXattr(file, 'trusted.scanned-by.peer')?.toString('latin1') ?? '(none)', /^v1 scanning /, "the peer's live lease stays");
  peer.kill('SIGKILL');
  await exited;
  t.deepEqual(store.clear(fd), ['trusted.scanned-by.peer'], "once its holder is gone, the peer's lease goes too");
});
