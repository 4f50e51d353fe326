// The native tag reader (native/tags) against the TypeScript tag store, on real xattrs of real files: one codec
// definition (src/tags), held to it field by field. Tags the store writes are judged alike by both; values changed
// byte by byte are judged alike by both (neither believes what the other rejects); and the reader thread's
// settlement is the stack's verdict from those answers.
import test from 'ava';
import { appendFileSync, chmodSync } from 'node:fs';
import { native } from '../src/gate/addon.js';
import type { NativeJudgedTag, NativeTagPolicy } from '../src/gate/types.js';
import type { Control } from '../src/config/types.js';
import type { Answer, AnswerKind } from '../src/policy/answer.js';
import { evaluate } from '../src/policy/stack.js';
import type { JudgedTag } from '../src/tags/judge.js';
import { clearTags, type TagStore } from '../src/tags/store.js';
import { KINDS, store, tagScratch, testKey } from './helpers/tag-files.js';
import { clockPast } from './helpers/wait.js';

const GEN = { clamav: 'db-1#0', yara: 'rules 7/ü%#3', idx: 'i#0' };

/** What the TypeScript store says, in the native reader's shape (stamp and times as decimal text). */
function tsShape(t: JudgedTag) {
  const v = t.value;
  const value = !v
    ? undefined
    : v.kind === 'scanning'
      ? { kind: 'scanning', token: v.token, holder: v.holder, leaseUntil: String(v.leaseUntil) }
      : { kind: 'result', answer: v.answer, generation: v.generation, ...(v.reason !== undefined && { reason: v.reason }), ...(v.digest !== undefined && { digest: v.digest }) };
  const stamp = v ? { ino: String(v.stamp.ino), igen: String(v.stamp.igen), size: String(v.stamp.size), mtimeNs: String(v.stamp.mtimeNs), time: String(v.time) } : undefined;
  // A value the TypeScript judge shows for a bad MAC or an invalid scanner name is shown, never believed: compare
  // the judgement there, and every field wherever a value was decoded by both.
  return { name: t.name, scanner: t.scanner, judgement: t.judgement, value: value && stamp ? { ...value, ...stamp } : undefined };
}

function nativeShape(t: NativeJudgedTag) {
  const v = t.value;
  if (!v) return { name: t.name, scanner: t.scanner, judgement: t.judgement, value: undefined };
  const { ino, igen, size, mtimeNs, time, ...rest } = v;
  return { name: t.name, scanner: t.scanner, judgement: t.judgement, value: { ...rest, ino, igen, size, mtimeNs, time } };
}

function agree(t: import('ava').ExecutionContext, fd: number, tags: TagStore, key: Buffer, generations: Record<string, string>, what: string) {
  const ts = tags.readSync(fd, generations).tags.map(tsShape).sort((a, b) => a.name.localeCompare(b.name));
  const nat = native.tagsJudge(fd, { namespace: 'trusted', key, generations, ctime: tags.stampMode === 'ctime' }).map(nativeShape).sort((a, b) => a.name.localeCompare(b.name));
  // The TS judge leaves the value of an unparseable tag out; so does the native one. For bad-mac both decode.
  t.deepEqual(nat, ts, what);
  return ts;
}

async function leaseAndFinish(tags: TagStore, fd: number, scanner: string, answer: Answer, generation: string) {
  const lease = tags.begin(fd, scanner, generation);
  if (lease.status !== 'leased') throw new Error(`no lease for ${scanner}`);
  const done = await tags.finish(fd, scanner, lease.token, answer, generation);
  if (done.status !== 'written') throw new Error(`not written: ${done.reason}`);
}

for (const kind of KINDS) {
  test(`${kind}: tags the TypeScript store wrote are judged by the native reader as by the store, field by field`, async (t) => {
    const s = await tagScratch(t, kind);
    const key = testKey();
    const tags = store(key);
    const { fd } = s.file('a.txt', 'content\n');
    await leaseAndFinish(tags, fd, 'clamav', { answer: 'deny', reason: 'Eicar FOUND 100% — ünïcode, spaces & =signs= %41' }, GEN.clamav);
    await leaseAndFinish(tags, fd, 'yara', { answer: 'allow' }, GEN.yara);
    await leaseAndFinish(tags, fd, 'ok-one', { answer: 'ok', reason: '' }, 'x#1');
    const live = tags.begin(fd, 'idx', GEN.idx); // a live lease
    t.is(live.status, 'leased');
    const seen = agree(t, fd, tags, key, GEN, 'fresh tags');
    t.deepEqual(seen.map((x) => x.judgement).sort(), ['scanning-live', 'valid', 'valid', 'valid']);
    agree(t, fd, tags, key, { ...GEN, clamav: 'db-2#0' }, 'a newer generation: stale-generation');
    agree(t, fd, tags, key, {}, 'no generations: unchecked');
    agree(t, fd, store(testKey()), testKey(), GEN, 'another key: bad-mac');
    // A copied value under another scanner's name, and junk.
    native.setXattr(fd, 'trusted.scanned-by.copied', native.getXattr(fd, 'trusted.scanned-by.yara')!);
    native.setXattr(fd, 'trusted.scanned-by.junk', Buffer.from('not a tag at all'));
    native.setXattr(fd, 'trusted.scanned-by.Bad_Name', native.getXattr(fd, 'trusted.scanned-by.yara')!);
    native.setXattr(fd, 'trusted.scanned-by.binary', Buffer.from([0x76, 0x31, 0x20, 0x00, 0xff]));
    const judged = agree(t, fd, tags, key, GEN, 'copied, junk, bad names');
    t.is(judged.find((x) => x.scanner === 'copied')?.judgement, 'bad-mac');
    t.is(judged.find((x) => x.scanner === 'junk')?.judgement, 'unparseable');
    // An expired lease (a 1 ms lease, looked at once it has passed: the clock, not a sleep, is the event).
    const short = store(key, { leaseMs: 1 });
    const { fd: fd2 } = s.file('b.txt');
    const l2 = short.begin(fd2, 'clamav', GEN.clamav);
    if (l2.status !== 'leased') return t.fail();
    await clockPast(l2.leaseUntil);
    t.is(agree(t, fd2, tags, key, GEN, 'expired lease')[0]!.judgement, 'scanning-expired');
    // The file changes under its tags: stale-stamp on both sides.
    const f = s.file('c.txt', 'one\n');
    await leaseAndFinish(tags, f.fd, 'clamav', { answer: 'allow' }, GEN.clamav);
    appendFileSync(f.path, 'two\n');
    t.is(agree(t, f.fd, tags, key, GEN, 'changed file')[0]!.judgement, 'stale-stamp');
    // ctime mode: the inode touched after our newest tag write (a chmod: the stamp is the same) — no tag counts.
    const g = s.file('g.txt', 'one\n');
    await leaseAndFinish(tags, g.fd, 'clamav', { answer: 'allow' }, GEN.clamav);
    agree(t, g.fd, tags, key, GEN, 'just written'); // valid, unless this busy machine let the write land late thrice
    await clockPast(Date.now() + 120); // past the 50 ms slack, by the clock
    chmodSync(g.path, 0o600);
    t.is(agree(t, g.fd, tags, key, GEN, 'touched after the last tag write')[0]!.judgement, 'stale-stamp');
    t.is(agree(t, g.fd, store(key, { stampMode: 'mtime' }), key, GEN, 'mtime mode does not look at ctime')[0]!.judgement, 'valid');
  });

  test(`${kind}: content-mode tags (with a digest) decode alike; a value changed in any byte is judged alike by both`, async (t) => {
    const s = await tagScratch(t, kind);
    const key = testKey();
    const tags = store(key, { stampMode: 'content' });
    const { fd } = s.file('d.txt', 'digest me\n');
    await leaseAndFinish(tags, fd, 'clamav', { answer: 'deny', reason: 'Trojan.X' }, GEN.clamav);
    agree(t, fd, tags, key, GEN, 'content-mode tag');
    const name = 'trusted.scanned-by.clamav';
    const good = native.getXattr(fd, name)!;
    // Every byte replaced by each of a few characters that matter to the grammar: separators, digits, hex, '%'.
    let valid = 0;
    for (let i = 0; i < good.length; i++) {
      for (const c of [' ', '=', '0', '9', 'a', 'F', '%', 'x']) {
        const bad = Buffer.from(good);
        if (bad[i] === c.charCodeAt(0)) continue;
        bad[i] = c.charCodeAt(0);
        native.setXattr(fd, name, bad);
        const [judged] = agree(t, fd, tags, key, GEN, `byte ${i} -> ${JSON.stringify(c)}: ${bad.toString()}`);
        if (judged?.judgement === 'valid') valid++;
      }
    }
    t.is(valid, 0, 'no changed value is valid');
    // Structure: fields removed, repeated, reordered, a trailing space, a lone '%' or invalid UTF-8 in the reason.
    const text = good.toString();
    const variants = [
      text.replace(/ time=\d+/, ''),
      text.replace(/ gen=/, ' gen=x gen='),
      text.replace(/^v1 /, 'v2 '),
      text.replace(/ mac=/, '  mac='),
      text + ' ',
      text.replace(/reason=[^ ]+/, 'reason=%'),
      text.replace(/reason=[^ ]+/, 'reason=%C3%28'),
      text.replace(/reason=[^ ]+/, 'reason=%ED%A0%80'),
      text.replace(/ size=\d+/, ' size=01'),
      text.replace(/mac=[0-9a-f]+/, (m) => m.toUpperCase().replace('MAC=', 'mac=')),
      'v1',
      'v1 mac=' + '0'.repeat(64),
    ];
    for (const v of variants) {
      native.setXattr(fd, name, Buffer.from(v));
      agree(t, fd, tags, key, GEN, `variant ${v}`);
    }
    try {
      native.setXattr(fd, name, Buffer.alloc(5000, 0x61)); // longer than any value of ours
      agree(t, fd, tags, key, GEN, 'too long');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err; // ext4 cannot hold one: nothing to judge
    }
  });

  test(`${kind}: the reader thread's settlement is the stack's verdict from the valid tags and the constant answers`, async (t) => {
    const s = await tagScratch(t, kind);
    const key = testKey();
    const tags = store(key);
    const { fd } = s.file('e.txt');
    const controls: Control[] = ['required', 'requisite', 'sufficient', 'optional', 'observe'];
    const kinds: AnswerKind[] = ['deny', 'ok', 'allow'];
    // A fixed-seed walk through stacks and answers (reproducible, and it covers every control and answer).
    let seed = 12345;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) % n;
    const seen = { allow: 0, deny: 0, unknown: 0 };
    for (let round = 0; round < 150; round++) {
      clearTags(fd);
      const n = 1 + rnd(4);
      const rules: NativeTagPolicy['rules'] = [];
      const answers = new Map<string, Answer>();
      for (let i = 0; i < n; i++) {
        const name = `s${i}`;
        const control = controls[rnd(controls.length)]!;
        const gen = `g${rnd(2)}#0`;
        rules.push({ name, control, generation: 'g0#0' });
        const r = rnd(4);
        if (r < 3) {
          // A tag with this answer; valid only if its generation is the current one.
          await leaseAndFinish(tags, fd, name, { answer: kinds[r]! }, gen);
          if (gen === 'g0#0') answers.set(name, { answer: kinds[r]! });
        }
      }
      if (rnd(2) === 0) {
        rules.push({ name: 'default', control: 'required', constant: 'allow' });
        answers.set('default', { answer: 'allow' });
      }
      const policy: NativeTagPolicy = { namespace: 'trusted', key, denyResponse: 2, ctime: true, rules };
      const v = evaluate(rules, answers);
      const observerMissing = rules.some((r) => r.control === 'observe' && !answers.has(r.name));
      const want = v.verdict === 'pending' || observerMissing ? 'unknown' : v.verdict;
      const got = native.tagsSettle(fd, policy);
      t.is(got, want, `round ${round}: ${JSON.stringify(rules)} answers ${JSON.stringify([...answers])}`);
      seen[got]++;
    }
    t.true(seen.allow > 10 && seen.deny > 10 && seen.unknown > 10, JSON.stringify(seen));
    // Another key: nothing is believed, and the constant default alone cannot settle past a required scanner that
    // has no answer (it could still deny).
    const other: NativeTagPolicy = { namespace: 'trusted', key: testKey(), denyResponse: 2, ctime: true, rules: [{ name: 's0', control: 'required', generation: 'g0#0' }, { name: 'default', control: 'required', constant: 'allow' }] };
    clearTags(fd);
    await leaseAndFinish(tags, fd, 's0', { answer: 'deny' }, 'g0#0');
    t.is(native.tagsSettle(fd, { ...other, key }), 'deny');
    t.is(native.tagsSettle(fd, other), 'unknown', 'signed with another key: s0 has no answer');
    t.throws(() => native.tagsSettle(fd, { ...other, key: Buffer.alloc(3) }), { message: /options\.key must be a Buffer of 32 bytes/ });
    t.throws(() => native.tagsSettle(fd, { ...other, rules: [{ name: 's0', control: 'sometimes' as Control }] }), { message: /rules\[0\]\.control/ });
  });
}
