// The native tag writer (native/tags/write.cc) on real xattrs of real files, once on ext4 and once on tmpfs: what it
// writes is codec.ts's format byte for byte (each value decoded and re-encoded by the TypeScript codec gives the same
// bytes), the lease and the conditional bless keep TagStore's rules against a second process that writes the file
// or clears its tags between begin and finish, and in ctime mode the result's ctime is covered by the time it carries.
import test from 'ava';
import { fstatSync } from 'node:fs';
import { native } from '../src/gate/addon.js';
import { decodeTag, encodeTag } from '../src/tags/codec.js';
import { CTIME_SLACK_MS } from '../src/tags/ctime.js';
import { KINDS, store, tagScratch, testKey } from './helpers/tag-files.js';
import { runChild } from './helpers/child.js';

const NAME = 'trusted.scanned-by.clamav';

/** The value on the file, decoded by the TypeScript codec and encoded again by it: must be the same bytes. */
function reencoded(fd: number, key: Buffer): { raw: string; again: string } {
  const raw = native.getXattr(fd, NAME)!;
  const d = decodeTag(raw);
  if (!d.ok) throw new Error(`native value does not decode: ${d.problem}: ${raw.toString('latin1')}`);
  return { raw: raw.toString('latin1'), again: encodeTag(d.tag.value, key, NAME, 'clamav').toString('latin1') };
}

const REASONS: (string | undefined)[] = [
  undefined,
  '',
  'Eicar-Test-Signature FOUND',
  "sp ace, 100% ~*'()!-_. ü€ 😀 \u0000 tab\tnl\n",
  'x'.repeat(2000), // cut: over the encoded limit
  '😀'.repeat(400), // cut by code points, 4 UTF-8 bytes each
  'é'.repeat(700),
];

for (const kind of KINDS) {
  test(`${kind}: leases and results the native writer puts down re-encode byte for byte with the TypeScript codec`, async (t) => {
    const s = await tagScratch(t, kind);
    const key = testKey();
    const generations = ['db-1#0', 'rules 7/ü%#3', 'a:b c\u00e9#12'];
    let i = 0;
    for (const stampMode of ['ctime', 'mtime', 'content'] as const) {
      const tags = store(key, { stampMode, host: 'höst name%', pid: 4242 });
      for (const reason of REASONS) {
        const generation = generations[i % generations.length]!;
        const { fd } = s.file(`f${i++}`, `content ${i}\n`);
        const lease = tags.begin(fd, 'clamav', generation);
        if (lease.status !== 'leased') return t.fail('expected a lease');
        const l = reencoded(fd, key);
        t.is(l.raw, l.again, `lease, ${stampMode}`);
        const digest = stampMode === 'content' ? 'ab'.repeat(32) : undefined;
        const done = await tags.finish(fd, 'clamav', lease.token, reason === undefined ? { answer: 'deny' } : { answer: 'deny', reason }, generation, { digest });
        t.is(done.status, 'written');
        const r = reencoded(fd, key);
        t.is(r.raw, r.again, `result, ${stampMode}, reason ${JSON.stringify(reason?.slice(0, 20))}`);
        t.true(r.raw.length <= 4096);
        const value = decodeTag(Buffer.from(r.raw, 'latin1'));
        if (!value.ok || value.tag.value.kind !== 'result') return t.fail();
        t.is(value.tag.value.generation, generation);
        t.is(value.tag.value.digest, digest);
        // Reasons that fit come back as they were; cut ones are a prefix of them, ended by an ellipsis.
        const back = value.tag.value.reason;
        if (reason === undefined || reason === '') t.is(back, undefined);
        else if (encodeURIComponent(reason).length <= 1536) t.is(back, reason);
        else t.true(back!.endsWith('…') && reason.startsWith(back!.slice(0, -1)), 'cut at a code point');
      }
    }
  });

  test(`${kind}: a second process rewriting the file between begin and finish: no passed tag, the lease given back`, async (t) => {
    const s = await tagScratch(t, kind);
    const tags = store(testKey());
    const { fd, path } = s.file('a', 'abcdefgh');
    const lease = tags.begin(fd, 'clamav', 'g#0');
    if (lease.status !== 'leased') return t.fail();
    // Same size, content changed by another process (dd conv=notrunc: no truncate, the size stays 8).
    const w = await runChild('dd', [`of=${path}`, 'conv=notrunc', 'status=none'], { input: 'ABCDEFGH', timeoutMs: 10_000 });
    t.is(w.code, 0, w.stderr);
    t.like(await tags.finish(fd, 'clamav', lease.token, { answer: 'allow' }, 'g#0'), { status: 'dropped', code: 'stamp-changed' });
    t.is(native.getXattr(fd, NAME), null, 'neither the result nor the stale lease is left');
  });

  test(`${kind}: a second process clearing the lease between begin and finish: ENODATA, nothing written`, async (t) => {
    const s = await tagScratch(t, kind);
    const tags = store(testKey());
    const { fd, path } = s.file('a');
    const lease = tags.begin(fd, 'clamav', 'g#0');
    if (lease.status !== 'leased') return t.fail();
    // The dirty transition of another daemon thread or process: it removes every scanned-by tag.
    const clear = `import('${new URL('../src/tags/store.js', import.meta.url).href}').then((m) => console.log(JSON.stringify(m.clearTags(process.argv[1]))))`;
    const c = await runChild(process.execPath, ['-e', clear, path], { timeoutMs: 20_000 });
    t.is(c.code, 0, c.stderr);
    t.deepEqual(JSON.parse(c.stdout), [NAME]);
    t.like(await tags.finish(fd, 'clamav', lease.token, { answer: 'allow' }, 'g#0'), { status: 'dropped', code: 'ENODATA' });
    t.deepEqual(native.listXattr(fd), []);
  });

  test(`${kind}: ctime mode: the inode's ctime after each result write is within the slack of the time the tag carries`, async (t) => {
    // The fact tagFinish relies on to skip an fstat (docs/kernel.md): the ctime a setxattr sets is a clock reading
    // taken inside the call, so never later than the clock read after it returns.
    const s = await tagScratch(t, kind);
    const tags = store(testKey(), { stampMode: 'ctime' });
    for (let i = 0; i < 200; i++) {
      const { fd } = s.file(`f${i}`);
      const lease = tags.begin(fd, 'clamav', 'g#0');
      if (lease.status !== 'leased') return t.fail();
      t.is((await tags.finish(fd, 'clamav', lease.token, { answer: 'ok' }, 'g#0')).status, 'written');
      const v = decodeTag(native.getXattr(fd, NAME)!);
      if (!v.ok) return t.fail();
      const ctimeNs = fstatSync(fd, { bigint: true }).ctimeNs;
      t.true(ctimeNs <= BigInt(v.tag.value.time + CTIME_SLACK_MS) * 1_000_000n, `file ${i}: ctime ${ctimeNs} vs tag time ${v.tag.value.time}`);
      t.is(tags.readSync(fd, { clamav: 'g#0' }).tags[0]!.judgement, 'valid');
      s.close(fd);
    }
  });
}

test('the native writer refuses what the codec refuses, with the codec error codes', (t) => {
  const key = testKey();
  t.throws(() => store(key, { host: 'h'.repeat(400) }), { code: 'TAG_FIELD_TOO_LONG' });
  const tags = store(key);
  t.throws(() => tags.begin(0, 'Not A Name'), { code: 'TAG_BAD_SCANNER_NAME' });
});
