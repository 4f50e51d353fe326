// The tag value format: round trips of every field, MAC binding, and values that must not parse.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { decodeTag, encodeTag, verifyTag, MAX_VALUE_BYTES, type ResultTag, type ScanningTag } from '../src/tags/codec.js';
import { judgeTag } from '../src/tags/judge.js';

const key = randomBytes(32);
const stamp = { ino: 18446744073709551615n, igen: 4294967295, size: 123456789012345n, mtimeNs: 1732900000123456789n };
const NAME = 'trusted.scanned-by.clamav';

function roundTrip(value: ResultTag | ScanningTag, scanner = 'clamav', name = NAME) {
  const raw = encodeTag(value, key, name, scanner);
  const decoded = decodeTag(raw);
  if (!decoded.ok) throw new Error(decoded.problem);
  return { raw, tag: decoded.tag };
}

test('result tags round-trip every field, with and without digest and reason', (t) => {
  const values: ResultTag[] = [
    { kind: 'result', answer: 'deny', reason: 'Eicar-Test-Signature FOUND; "quoted" 100% ü 🦠', generation: 'daily:27000 main:62#3', stamp, time: 1732900000123 },
    { kind: 'result', answer: 'ok', generation: '', stamp: { ino: 0n, igen: 0, size: 0n, mtimeNs: 0n }, time: 0 },
    { kind: 'result', answer: 'allow', reason: 'on the allow-list', generation: 'g#0', stamp, time: 1, digest: 'ab'.repeat(32) },
  ];
  for (const value of values) {
    const { raw, tag } = roundTrip(value);
    t.true(raw.toString('ascii').startsWith('v1 '));
    t.regex(raw.toString('ascii'), /^[\x20-\x7e]+$/);
    t.deepEqual(tag.value, value);
    t.true(verifyTag(tag, key, NAME, 'clamav'));
  }
});

test('scanning tags round-trip token, holder and lease', (t) => {
  const value: ScanningTag = { kind: 'scanning', token: 'deadbeef'.repeat(4), holder: 'host-1.example:4242', leaseUntil: 1732900060000, stamp, time: 1732900000000 };
  const { raw, tag } = roundTrip(value);
  t.true(raw.toString().startsWith('v1 scanning token=deadbeef'));
  t.deepEqual(tag.value, value);
  t.true(verifyTag(tag, key, NAME, 'clamav'));
});

test('a very long reason is cut, and the value stays under the limit', (t) => {
  const value: ResultTag = { kind: 'result', answer: 'deny', reason: '🦠'.repeat(5000), generation: 'g#1', stamp, time: 5 };
  const { raw, tag } = roundTrip(value);
  t.true(raw.length <= MAX_VALUE_BYTES);
  t.true((tag.value as ResultTag).reason!.startsWith('🦠🦠'));
  t.true((tag.value as ResultTag).reason!.endsWith('…'));
});

test('an oversized generation is refused at encode with a named error', (t) => {
  const err = t.throws(() => encodeTag({ kind: 'result', answer: 'ok', generation: 'x'.repeat(300), stamp, time: 1 }, key, NAME, 'clamav'));
  t.is((err as { code?: string }).code, 'TAG_FIELD_TOO_LONG');
});

test('the MAC binds every field: each single-byte change is caught', (t) => {
  const value: ResultTag = { kind: 'result', answer: 'allow', reason: 'r', generation: 'g#1', stamp, time: 77, digest: 'cd'.repeat(32) };
  const raw = encodeTag(value, key, NAME, 'clamav');
  const macAt = raw.toString().indexOf(' mac=');
  let caught = 0;
  for (let i = 0; i < raw.length; i++) {
    const copy = Buffer.from(raw);
    copy[i] = copy[i] === 0x31 ? 0x32 : 0x31; // another printable byte
    const judged = judgeTag({ name: NAME, namespace: 'trusted', scanner: 'clamav', raw: copy, key, stamp, generations: {}, now: 0 });
    t.not(judged.judgement, 'valid', `byte ${i} of ${raw.length} (mac at ${macAt})`);
    t.true(judged.judgement === 'bad-mac' || judged.judgement === 'unparseable', `byte ${i}: ${judged.judgement}`);
    caught++;
  }
  t.is(caught, raw.length);
});

test('the MAC binds the scanner and xattr name and the key', (t) => {
  const value: ResultTag = { kind: 'result', answer: 'allow', generation: 'g#1', stamp, time: 77 };
  const raw = encodeTag(value, key, NAME, 'clamav');
  const judge = (over: Partial<Parameters<typeof judgeTag>[0]>) =>
    judgeTag({ name: NAME, namespace: 'trusted', scanner: 'clamav', raw, key, stamp, generations: {}, now: 0, ...over }).judgement;
  t.is(judge({}), 'valid');
  t.is(judge({ name: 'trusted.scanned-by.yara', scanner: 'yara' }), 'bad-mac'); // moved to another scanner
  t.is(judge({ name: 'user.scanned-by.clamav', namespace: 'user' }), 'bad-mac'); // moved to the other namespace
  t.is(judge({ key: randomBytes(32) }), 'bad-mac'); // another key
});

test('values that are not ours do not parse, and say why', (t) => {
  const bad: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['junk', Buffer.from('hello world')],
    ['binary', randomBytes(200)],
    ['nul byte', Buffer.from('v1 ok gen=x\0')],
    ['newline', Buffer.from('v1 ok gen=a\nmac=' + '0'.repeat(64))],
    ['oversized', Buffer.from('v1 ok reason=' + 'a'.repeat(MAX_VALUE_BYTES))],
    ['unknown version', Buffer.from('v2 ok gen=a mac=' + '0'.repeat(64))],
    ['unknown kind', Buffer.from('v1 maybe gen=a mac=' + '0'.repeat(64))],
    ['missing field', Buffer.from('v1 ok gen=a ino=1 igen=0 size=1 time=1 mac=' + '0'.repeat(64))],
    ['out of order', Buffer.from('v1 ok ino=1 gen=a igen=0 size=1 mtime=1 time=1 mac=' + '0'.repeat(64))],
    ['repeated', Buffer.from('v1 ok gen=a gen=a ino=1 igen=0 size=1 mtime=1 time=1 mac=' + '0'.repeat(64))],
    ['unknown field', Buffer.from('v1 ok gen=a ino=1 igen=0 size=1 mtime=1 time=1 evil=1 mac=' + '0'.repeat(64))],
    ['negative', Buffer.from('v1 ok gen=a ino=-1 igen=0 size=1 mtime=1 time=1 mac=' + '0'.repeat(64))],
    ['leading zero', Buffer.from('v1 ok gen=a ino=01 igen=0 size=1 mtime=1 time=1 mac=' + '0'.repeat(64))],
    ['bad percent', Buffer.from('v1 ok gen=%zz ino=1 igen=0 size=1 mtime=1 time=1 mac=' + '0'.repeat(64))],
    ['short mac', Buffer.from('v1 ok gen=a ino=1 igen=0 size=1 mtime=1 time=1 mac=abc')],
    ['no mac', Buffer.from('v1 ok gen=a ino=1 igen=0 size=1 mtime=1 time=1')],
    ['bad token', Buffer.from('v1 scanning token=xyz holder=h until=1 ino=1 igen=0 size=1 mtime=1 time=1 mac=' + '0'.repeat(64))],
  ];
  for (const [what, raw] of bad) {
    const r = decodeTag(raw);
    t.false(r.ok, what);
    if (!r.ok) t.true(r.problem.length > 0, what);
    const judged = judgeTag({ name: NAME, namespace: 'trusted', scanner: 'clamav', raw, key, stamp, generations: {}, now: 0 });
    t.is(judged.judgement, 'unparseable', what);
    t.is(judged.value, undefined, what);
  }
  t.regex((decodeTag(Buffer.from('v2 x')) as { problem: string }).problem, /unknown version v2/);
  t.regex((decodeTag(Buffer.alloc(5000, 0x61)) as { problem: string }).problem, /5000 bytes/);
});

test('judging: stamp, generation, leases, content', (t) => {
  const now = 1_000_000;
  const result = encodeTag({ kind: 'result', answer: 'ok', generation: 'g#2', stamp, time: now, digest: 'ef'.repeat(32) }, key, NAME, 'clamav');
  const j = (raw: Buffer, over: Partial<Parameters<typeof judgeTag>[0]> = {}) =>
    judgeTag({ name: NAME, namespace: 'trusted', scanner: 'clamav', raw, key, stamp, generations: { clamav: 'g#2' }, now, ...over });
  t.is(j(result).judgement, 'valid');
  t.true(j(result).generationChecked);
  t.is(j(result, { stamp: { ...stamp, size: stamp.size + 1n } }).judgement, 'stale-stamp');
  t.is(j(result, { stamp: { ...stamp, mtimeNs: stamp.mtimeNs + 1n } }).judgement, 'stale-stamp');
  t.is(j(result, { stamp: { ...stamp, igen: 1 } }).judgement, 'stale-stamp');
  t.is(j(result, { generations: { clamav: 'g#3' } }).judgement, 'stale-generation');
  t.is(j(result, { generations: {} }).judgement, 'valid');
  t.false(j(result, { generations: {} }).generationChecked);
  t.is(j(result, { content: { digest: 'ef'.repeat(32), required: true } }).judgement, 'valid');
  t.is(j(result, { content: { digest: '00'.repeat(32), required: false } }).judgement, 'stale-stamp');
  const noDigest = encodeTag({ kind: 'result', answer: 'ok', generation: 'g#2', stamp, time: now }, key, NAME, 'clamav');
  t.is(j(noDigest, { content: { digest: '00'.repeat(32), required: false } }).judgement, 'valid');
  t.is(j(noDigest, { content: { digest: '00'.repeat(32), required: true } }).judgement, 'stale-stamp');
  const lease = encodeTag({ kind: 'scanning', token: 'aa'.repeat(16), holder: 'h:1', leaseUntil: now + 1, stamp, time: now }, key, NAME, 'clamav');
  t.is(j(lease).judgement, 'scanning-live');
  t.is(j(lease, { now: now + 1 }).judgement, 'scanning-expired');
  t.is(j(result, { scanner: 'Bad Name' }).judgement, 'unparseable');
});
