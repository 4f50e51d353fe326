// TagStore on real xattrs, once on a loop-mounted ext4 image and once on tmpfs.
import test from 'ava';
import { appendFileSync, writeFileSync } from 'node:fs';
import { native } from '../src/gate/addon.js';
import { readStamp } from '../src/tags/stamp.js';
import { clearTags } from '../src/tags/store.js';
import type { ResultTag } from '../src/tags/codec.js';
import { KINDS, store, tagScratch, testKey } from './helpers/tag-files.js';
import { clockPast } from './helpers/wait.js';

const GEN = { clamav: 'db-1#0', yara: 'rules-7#0' };

for (const kind of KINDS) {
  test(`${kind}: begin + finish writes a result that reads back valid with every field`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd } = s.file('a.txt');
    const tags = store(testKey());
    const lease = tags.begin(fd, 'clamav', GEN.clamav);
    if (lease.status !== 'leased') return t.fail('expected a lease');
    t.is(lease.replaced, 'absent');
    const during = await tags.read(fd, GEN);
    t.is(during.tags.length, 1);
    t.is(during.tags[0]!.judgement, 'scanning-live');
    const before = Date.now();
    const done = await tags.finish(fd, 'clamav', lease.token, { answer: 'deny', reason: 'Eicar FOUND' }, GEN.clamav);
    t.is(done.status, 'written');
    const report = await tags.read(fd, GEN);
    t.is(report.tags.length, 1);
    const tag = report.tags[0]!;
    t.is(tag.name, 'trusted.scanned-by.clamav');
    t.is(tag.scanner, 'clamav');
    t.is(tag.judgement, 'valid');
    const value = tag.value as ResultTag;
    t.is(value.answer, 'deny');
    t.is(value.reason, 'Eicar FOUND');
    t.is(value.generation, 'db-1#0');
    t.deepEqual(value.stamp, readStamp(fd));
    t.true(value.time >= before && value.time <= Date.now());
    t.is(value.digest, undefined);
    t.true(native.getXattr(fd, 'trusted.scanned-by.clamav')!.toString().startsWith('v1 deny '));
  });

  test(`${kind}: begin with yieldToResult leaves another holder's result of this generation on the file as it is, and takes over any other`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd, path } = s.file('a.txt');
    const key = testKey();
    const peer = store(key, { host: 'peer-host' });
    const ours = store(key, { host: 'this-host' });
    const peerLease = peer.begin(fd, 'clamav', GEN.clamav);
    if (peerLease.status !== 'leased') return t.fail('expected a lease');
    t.is((await peer.finish(fd, 'clamav', peerLease.token, { answer: 'ok' }, GEN.clamav)).status, 'written');
    const written = native.getXattr(fd, 'trusted.scanned-by.clamav')!.toString();
    // The peer's result stands: not replaced, the value on disk unchanged.
    t.deepEqual(ours.begin(fd, 'clamav', GEN.clamav, { takeOwn: true, yieldToResult: true }), { status: 'result' });
    t.is(native.getXattr(fd, 'trusted.scanned-by.clamav')!.toString(), written);
    // Of another generation: taken over, as without the option.
    const newer = ours.begin(fd, 'clamav', 'db-2#0', { takeOwn: true, yieldToResult: true });
    t.is(newer.status, 'leased');
    if (newer.status === 'leased') t.is(newer.replaced, 'stale-generation');
    // A result of content that is gone (the file written since): taken over.
    const again = peer.begin(fd, 'clamav', GEN.clamav, { takeOwn: true });
    t.is(again.status, 'busy', "our live lease holds the peer off");
    if (newer.status === 'leased') ours.abort(fd, 'clamav', newer.token);
    const second = peer.begin(fd, 'clamav', GEN.clamav);
    if (second.status !== 'leased') return t.fail('expected a lease');
    t.is((await peer.finish(fd, 'clamav', second.token, { answer: 'ok' }, GEN.clamav)).status, 'written');
    appendFileSync(path, 'more\n');
    const changed = ours.begin(fd, 'clamav', GEN.clamav, { takeOwn: true, yieldToResult: true });
    t.is(changed.status, 'leased');
    if (changed.status === 'leased') t.is(changed.replaced, 'stale-stamp');
  });

  test(`${kind}: a value copied to another file is stale-stamp, to another scanner's name bad-mac`, async (t) => {
    const s = await tagScratch(t, kind);
    const a = s.file('a', 'same content');
    const b = s.file('b', 'same content');
    const tags = store(testKey());
    const lease = tags.begin(a.fd, 'clamav');
    if (lease.status !== 'leased') return t.fail();
    t.is((await tags.finish(a.fd, 'clamav', lease.token, { answer: 'allow' }, GEN.clamav)).status, 'written');
    const value = native.getXattr(a.fd, 'trusted.scanned-by.clamav')!;
    native.setXattr(b.path, 'trusted.scanned-by.clamav', value);
    native.setXattr(a.path, 'trusted.scanned-by.yara', value);
    const onB = await tags.read(b.fd, GEN);
    t.is(onB.tags[0]!.judgement, 'stale-stamp');
    t.regex(onB.tags[0]!.detail!, /ino/);
    const onA = await tags.read(a.fd, GEN);
    const byName = Object.fromEntries(onA.tags.map((x) => [x.scanner, x.judgement]));
    t.deepEqual(byName, { clamav: 'valid', yara: 'bad-mac' });
  });

  test(`${kind}: one byte changed on disk, or another key, gives bad-mac`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd, path } = s.file('a');
    const key = testKey();
    const tags = store(key);
    const lease = tags.begin(fd, 'clamav');
    if (lease.status !== 'leased') return t.fail();
    await tags.finish(fd, 'clamav', lease.token, { answer: 'ok' }, GEN.clamav);
    t.is((await store(testKey()).read(fd, GEN)).tags[0]!.judgement, 'bad-mac');
    const value = native.getXattr(fd, 'trusted.scanned-by.clamav')!;
    const at = value.indexOf('time=') + 5;
    value[at] = value[at] === 0x39 ? 0x38 : value[at]! + 1; // time plus one digit step
    native.setXattr(path, 'trusted.scanned-by.clamav', value);
    const judged = (await tags.read(fd, GEN)).tags[0]!;
    t.is(judged.judgement, 'bad-mac');
  });

  test(`${kind}: tags removed between begin and finish: the kernel says ENODATA and the result is dropped`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd, path } = s.file('a');
    const tags = store(testKey());
    const lease = tags.begin(fd, 'clamav');
    if (lease.status !== 'leased') return t.fail();
    t.deepEqual(clearTags(path), ['trusted.scanned-by.clamav']); // the dirty transition
    const done = await tags.finish(fd, 'clamav', lease.token, { answer: 'allow' }, GEN.clamav);
    t.is(done.status, 'dropped');
    t.is(done.status === 'dropped' ? done.code : undefined, 'ENODATA');
    t.deepEqual(native.listXattr(fd), []);
  });

  test(`${kind}: a write during the scan drops the result and gives the lease back`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd, path } = s.file('a');
    const tags = store(testKey());
    const lease = tags.begin(fd, 'clamav');
    if (lease.status !== 'leased') return t.fail();
    appendFileSync(path, 'more'); // no dirty transition seen (daemon busy or down): the stamp check catches it
    const done = await tags.finish(fd, 'clamav', lease.token, { answer: 'allow' }, GEN.clamav);
    t.like(done, { status: 'dropped', code: 'stamp-changed' });
    t.deepEqual(native.listXattr(fd), []);
  });

  test(`${kind}: a same-size rewrite during the scan is caught by the stamp`, async (t) => {
    // Relies on multigrain timestamps (Linux 6.13+, ext4 and tmpfs): the fstat at begin() makes the next mtime
    // update fine-grained, so a rewrite right after it cannot keep the old mtime by coarse clock luck.
    const s = await tagScratch(t, kind);
    const { fd, path } = s.file('a', 'abc');
    const tags = store(testKey());
    const lease = tags.begin(fd, 'clamav');
    if (lease.status !== 'leased') return t.fail();
    writeFileSync(path, 'abd');
    t.like(await tags.finish(fd, 'clamav', lease.token, { answer: 'allow' }, GEN.clamav), { status: 'dropped', code: 'stamp-changed' });
  });

  test(`${kind}: two holders: one gets the lease, the other is told who holds it; a finished tag is taken over`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd } = s.file('a');
    const key = testKey();
    const a = store(key, { host: 'alpha', pid: 10 });
    const b = store(key, { host: 'beta', pid: 20 });
    const la = a.begin(fd, 'clamav');
    const lb = b.begin(fd, 'clamav');
    t.is(la.status, 'leased');
    t.like(lb, { status: 'busy', holder: 'alpha:10', own: false });
    t.like(a.begin(fd, 'clamav'), { status: 'busy', own: true });
    t.is(b.begin(fd, 'yara').status, 'leased'); // another scanner's tag is independent
    if (la.status !== 'leased') return;
    await a.finish(fd, 'clamav', la.token, { answer: 'ok' }, GEN.clamav);
    const again = b.begin(fd, 'clamav', 'db-2#0');
    t.like(again, { status: 'leased', replaced: 'stale-generation' });
  });

  test(`${kind}: an expired lease is taken over; the old holder's late result is dropped`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd } = s.file('a');
    const key = testKey();
    // Long enough that a loaded machine (load 25+, the whole suite at once) cannot stall past it between the two
    // begins below: at 40 ms it did, and the second holder found the lease expired already.
    const a = store(key, { host: 'alpha', pid: 10, leaseMs: 1500 });
    const b = store(key, { host: 'beta', pid: 20 });
    const la = a.begin(fd, 'clamav');
    if (la.status !== 'leased') return t.fail();
    t.is(b.begin(fd, 'clamav').status, 'busy');
    await clockPast(la.leaseUntil);
    t.is((await b.read(fd, GEN)).tags[0]!.judgement, 'scanning-expired');
    const lb = b.begin(fd, 'clamav');
    t.like(lb, { status: 'leased', replaced: 'scanning-expired' });
    t.like(await a.finish(fd, 'clamav', la.token, { answer: 'allow' }, GEN.clamav), { status: 'dropped', code: 'lease-lost' });
    if (lb.status !== 'leased') return;
    t.is((await b.finish(fd, 'clamav', lb.token, { answer: 'ok' }, GEN.clamav)).status, 'written');
    const tag = (await a.read(fd, GEN)).tags[0]!;
    t.is(tag.judgement, 'valid');
    t.is((tag.value as ResultTag).answer, 'ok');
  });

  test(`${kind}: a takeover in progress elsewhere means busy; a takeover lock left by a dead process is ignored`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd, path } = s.file('a');
    const key = testKey();
    const dead = store(key, { host: 'dead', pid: 1, leaseMs: 1 }).begin(fd, 'clamav');
    if (dead.status !== 'leased') return t.fail();
    await clockPast(dead.leaseUntil);
    native.setXattr(path, 'trusted.blessd-takeover.clamav', Buffer.from(`gamma:30 ${Date.now()} ${'ab'.repeat(16)}`));
    t.like(store(key).begin(fd, 'clamav'), { status: 'busy', holder: 'gamma:30' });
    native.setXattr(path, 'trusted.blessd-takeover.clamav', Buffer.from(`gamma:30 ${Date.now() - 60_000} ${'ab'.repeat(16)}`));
    t.like(store(key).begin(fd, 'clamav'), { status: 'leased', replaced: 'scanning-expired' });
    t.deepEqual(native.listXattr(fd), ['trusted.scanned-by.clamav']);
  });

  test(`${kind}: abort removes only our own lease`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd } = s.file('a');
    const tags = store(testKey());
    const lease = tags.begin(fd, 'clamav');
    if (lease.status !== 'leased') return t.fail();
    t.false(tags.abort(fd, 'clamav', 'ff'.repeat(16)));
    t.is(native.listXattr(fd).length, 1);
    t.true(tags.abort(fd, 'clamav', lease.token));
    t.deepEqual(native.listXattr(fd), []);
    t.false(tags.abort(fd, 'clamav', lease.token));
  });

  test(`${kind}: clear removes scanned-by tags of both namespaces and nothing else`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd, path } = s.file('a');
    const tags = store(testKey());
    const lease = tags.begin(fd, 'clamav');
    if (lease.status !== 'leased') return t.fail();
    await tags.finish(fd, 'clamav', lease.token, { answer: 'ok' }, GEN.clamav);
    native.setXattr(path, 'user.scanned-by.yara', Buffer.from('whatever'));
    native.setXattr(path, 'user.comment', Buffer.from('keep me'));
    native.setXattr(path, 'trusted.other', Buffer.from('keep me too'));
    t.deepEqual(tags.clear(fd).sort(), ['trusted.scanned-by.clamav', 'user.scanned-by.yara']);
    t.deepEqual(native.listXattr(fd).sort(), ['trusted.other', 'user.comment']);
    t.deepEqual(tags.clear(path), []);
  });

  test(`${kind}: junk and binary values are reported as unparseable, never trusted, and taken over by begin`, async (t) => {
    const s = await tagScratch(t, kind);
    const { fd, path } = s.file('a');
    const key = testKey();
    const tags = store(key);
    native.setXattr(path, 'trusted.scanned-by.junk', Buffer.from('not a tag at all'));
    native.setXattr(path, 'trusted.scanned-by.binary', Buffer.from([0, 1, 2, 255, 254, 0x76, 0x31, 0x20]));
    native.setXattr(path, 'trusted.scanned-by.future', Buffer.from('v9 ok whatever'));
    native.setXattr(path, 'trusted.scanned-by.Not_A_Name', Buffer.from('v1 ok'));
    const report = await tags.read(fd, GEN);
    const byName = Object.fromEntries(report.tags.map((x) => [x.scanner, x]));
    for (const name of ['junk', 'binary', 'future', 'Not_A_Name']) {
      t.is(byName[name]?.judgement, 'unparseable', name);
      t.is(byName[name]?.value, undefined, name);
      t.truthy(byName[name]?.detail, name);
    }
    t.regex(byName.future!.detail!, /unknown version v9/);
    const lease = tags.begin(fd, 'junk');
    t.like(lease, { status: 'leased', replaced: 'unparseable' });
  });
}

test('tmpfs: an oversized value (> 4 KiB) is reported as unparseable', async (t) => {
  const s = await tagScratch(t, 'tmpfs');
  const { fd, path } = s.file('a');
  native.setXattr(path, 'trusted.scanned-by.big', Buffer.alloc(6000, 'v1 ok '));
  const tag = (await store(testKey()).read(fd, GEN)).tags[0]!;
  t.is(tag.judgement, 'unparseable');
  t.regex(tag.detail!, /6000 bytes/);
});

test('ext4: tags survive an unmount and a mount of the image', async (t) => {
  const s = await tagScratch(t, 'ext4');
  const { fd, path } = s.file('a');
  const key = testKey();
  const tags = store(key);
  const lease = tags.begin(fd, 'clamav');
  if (lease.status !== 'leased') return t.fail();
  await tags.finish(fd, 'clamav', lease.token, { answer: 'allow', reason: 'kept' }, GEN.clamav);
  const before = readStamp(fd);
  s.close(fd);
  await s.scratch.remount();
  const fd2 = s.open(path);
  t.deepEqual(readStamp(fd2), before);
  const tag = (await store(key, { host: 'after-reboot', pid: 2 }).read(fd2, GEN)).tags[0]!;
  t.is(tag.judgement, 'valid');
  t.like(tag.value, { answer: 'allow', reason: 'kept' });
});

test('the store refuses bad options with a message naming the option', (t) => {
  const key = testKey();
  t.throws(() => store(key, { leaseMs: 0 }), { message: /options\.leaseMs/ });
  t.throws(() => store(Buffer.alloc(3)), { message: /options\.key/ });
  t.throws(() => store(key, { namespace: 'system' as 'user' }), { message: /options\.namespace/ });
  t.throws(() => store(key, { stampMode: 'atime' as 'mtime' }), { message: /options\.stampMode/ });
  t.throws(() => store(key).begin(0, '../evil'), { message: /not a scanner name/ });
});
