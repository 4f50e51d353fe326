import test from 'ava';
import { createHash } from 'node:crypto';
import allowlist from '../actors/allowlist.js';
import defaultActor from '../actors/default.js';
import expected from '../actors/expected.js';
import { native } from '../src/gate/addon.js';
import { tempDir, type TempDir } from './helpers/actor-files.js';

function withDir(t: { teardown(fn: () => void): void }): TempDir {
  const d = tempDir('blessd-misc-');
  t.teardown(() => d.cleanup());
  return d;
}

test('allowlist: a matching path glob allows ("safe"), others get no comment', async (t) => {
  const d = withDir(t);
  const actor = await allowlist.init({ paths: ['/usr/lib/**', '/opt/tools/*.sh'] });
  const file = d.write('f', 'x');
  t.deepEqual(await actor.scan(d.open(file, '/usr/lib/x86_64/libc.so.6')), { answer: 'allow', reason: 'safe' });
  t.deepEqual(await actor.scan(d.open(file, '/opt/tools/run.sh')), { answer: 'allow', reason: 'safe' });
  t.deepEqual(await actor.scan(d.open(file, '/opt/tools/sub/run.sh')), { answer: 'ok' });
  t.deepEqual(await actor.scan(d.open(file, '/home/user/run.sh')), { answer: 'ok' });
});

test('allowlist: the security.selinux label of the fd is matched, exactly or by glob', async (t) => {
  const d = withDir(t);
  const labelled = d.write('labelled', 'x');
  const plain = d.write('plain', 'y');
  // A real xattr on our own temp file; the kernel keeps the label NUL-terminated, as SELinux writes it.
  native.setXattr(labelled, 'security.selinux', Buffer.from('system_u:object_r:bin_t:s0\0'));
  const exact = await allowlist.init({ selinux: ['system_u:object_r:bin_t:s0'] });
  const glob = await allowlist.init({ selinux: ['*:bin_t:*'] });
  const other = await allowlist.init({ selinux: ['system_u:object_r:etc_t:s0'] });
  t.deepEqual(await exact.scan(d.open(labelled, '/display/only')), { answer: 'allow', reason: 'safe' });
  t.deepEqual(await glob.scan(d.open(labelled, '/display/only')), { answer: 'allow', reason: 'safe' });
  t.deepEqual(await other.scan(d.open(labelled, '/display/only')), { answer: 'ok' });
  t.deepEqual(await exact.scan(d.open(plain, '/display/only')), { answer: 'ok' }, 'no label at all');
});

test('allowlist: options are checked', async (t) => {
  await t.throwsAsync(async () => allowlist.init({}), { message: /^allowlist: options\.paths or options\.selinux/ });
  await t.throwsAsync(async () => allowlist.init({ paths: [''] }), { message: /^allowlist: options\.paths must be/ });
  await t.throwsAsync(async () => allowlist.init({ paths: ['/a'], selinux: 'x' }), { message: /options\.selinux/ });
  const a = await allowlist.init({ paths: ['/a'] });
  const b = await allowlist.init({ paths: ['/b'] });
  t.not(a.generation, b.generation);
});

test('default: answers its answer with reason "default"', async (t) => {
  const d = withDir(t);
  const file = d.write('f', 'x');
  t.deepEqual(await (await defaultActor.init({ answer: 'allow' })).scan(d.open(file)), { answer: 'allow', reason: 'default' });
  t.deepEqual(await (await defaultActor.init({ answer: 'deny' })).scan(d.open(file)), { answer: 'deny', reason: 'default' });
  await t.throwsAsync(async () => defaultActor.init({ answer: 'ok' }), { message: "default: options.answer must be 'allow' or 'deny'" });
  await t.throwsAsync(async () => defaultActor.init({}), { message: /options\.answer/ });
});

test('expected: allows listed paths and listed content, denies the rest', async (t) => {
  const d = withDir(t);
  const known = Buffer.concat([Buffer.alloc(3 << 20, 0x42), Buffer.from('known tail')]); // several chunks
  const digest = createHash('sha256').update(known).digest('hex');
  const actor = await expected.init({ paths: ['/srv/app/**'], sha256: [digest.toUpperCase()] });
  const knownFile = d.write('known', known);
  const other = d.write('other', Buffer.concat([known, Buffer.from('!')]));
  t.deepEqual(await actor.scan(d.open(knownFile, '/anywhere/x')), { answer: 'allow', reason: 'expected content' });
  t.deepEqual(await actor.scan(d.open(other, '/srv/app/bin/tool')), { answer: 'allow', reason: 'expected path' });
  t.deepEqual(await actor.scan(d.open(other, '/srv/other/tool')), { answer: 'deny', reason: 'not expected' });
  const pathsOnly = await expected.init({ paths: ['/srv/app/**'] });
  t.deepEqual(await pathsOnly.scan(d.open(knownFile, '/anywhere/x')), { answer: 'deny', reason: 'not expected' });
});

test('expected: options are checked', async (t) => {
  await t.throwsAsync(async () => expected.init({}), { message: /^expected: options\.paths or options\.sha256/ });
  await t.throwsAsync(async () => expected.init({ sha256: ['abc'] }), { message: /^expected: options\.sha256\[0\] must be 64 hex digits/ });
  await t.throwsAsync(async () => expected.init({ paths: [1] }), { message: /options\.paths/ });
});
