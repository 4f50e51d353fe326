// A judge task end to end in a real worker (src/pool/judge-batch.ts): real files on a private tmpfs, real tags
// (trusted.* xattrs) written and read by the real TagStore, real actors. What the main thread gets back, and what
// is on disk afterwards.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScanPool } from '../src/pool/scan-pool.js';
import type { JudgePolicy } from '../src/pool/tasks.js';
import { TagStore } from '../src/tags/index.js';
import { isRoot, makeScratch, type Scratch } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const WORD = fileURLToPath(new URL('./fixtures/word-actor.js', import.meta.url));
const KEY = randomBytes(32);

const policy = (over: Partial<JudgePolicy> = {}): JudgePolicy => ({
  rules: [
    { name: 'word', control: 'required' },
    { name: 'default', control: 'required', constant: { answer: 'allow', reason: 'default' } },
  ],
  generations: { word: 'word-BAD#0' },
  scanners: [{ name: 'word', actor: WORD, options: { word: 'BAD' }, generation: 'word-BAD', onError: 'deny', onTimeout: 'deny', onTooLarge: 'deny' }],
  tags: { namespace: 'trusted', key: new Uint8Array(KEY), leaseMs: 60_000, stampMode: 'ctime' },
  timeoutMs: 20_000,
  ...over,
});

async function setup(t: { teardown(fn: () => void | Promise<void>): void }) {
  const scratch: Scratch = await makeScratch('tmpfs', 16);
  const pool = new ScanPool({ threads: 1 });
  const fds: number[] = [];
  t.teardown(async () => {
    await pool.close();
    for (const fd of fds) closeSync(fd);
    await scratch.cleanup();
  });
  const open = (name: string, content: string) => {
    writeFileSync(join(scratch.dir, name), content);
    const fd = openSync(join(scratch.dir, name), 'r');
    fds.push(fd);
    return fd;
  };
  const store = new TagStore({ namespace: 'trusted', key: KEY });
  return { scratch, pool, open, store };
}

const result = (store: TagStore, fd: number, generations: Record<string, string>, name: string) => {
  const tag = store.readSync(fd, generations).tags.find((x) => x.scanner === name);
  return tag?.judgement === 'valid' && tag.value?.kind === 'result' ? tag.value.answer : tag?.judgement;
};

t0('one task judges a batch: tags read, leases taken, scans run and result tags written in the worker', async (t) => {
  const { pool, open, store } = await setup(t);
  const clean = open('clean.txt', 'fine\n');
  const bad = open('bad.txt', 'this is BAD\n');
  const tagged = open('tagged.txt', 'also fine\n');
  // Judged before, by the main thread's own store: a valid result tag decides without a scan.
  const lease = store.begin(tagged, 'word', 'word-BAD#0');
  if (lease.status !== 'leased') return t.fail('could not lease');
  await store.finish(tagged, 'word', lease.token, { answer: 'ok' }, 'word-BAD#0');
  const p = policy();
  const r = await pool.judge([clean, bad, tagged], p);
  if ('failed' in r) return t.fail(r.message);
  const [c, b, g] = r.files;
  t.deepEqual(new Map(c!.answers).get('word'), { answer: 'ok' });
  t.deepEqual(new Map(b!.answers).get('word'), { answer: 'deny', reason: 'contains BAD' });
  t.true(c!.path.endsWith('/clean.txt'), c!.path);
  t.deepEqual(c!.scans.map((s) => s.name), ['word']);
  t.true(g!.fromTags, 'the valid tag decided');
  t.deepEqual(g!.scans, [], 'nothing scanned');
  // On disk, in the format the main thread (and the native reader) trust:
  t.is(result(store, clean, p.generations, 'word'), 'ok');
  t.is(result(store, bad, p.generations, 'word'), 'deny');
  t.deepEqual([c!.slow, b!.slow, c!.transient, b!.transient], [[], [], [], []]);
});

t0('the stack decides as soon as it can; the slower scanner goes on in the worker and writes its tag after', async (t) => {
  const { pool, open, store } = await setup(t);
  const fd = open('bad.txt', 'BAD content\n');
  const p = policy({
    rules: [
      { name: 'slow', control: 'required' },
      { name: 'fast', control: 'requisite' },
      { name: 'default', control: 'required', constant: { answer: 'allow', reason: 'default' } },
    ],
    generations: { slow: 'word-BAD#0', fast: 'word-BAD#0' },
    scanners: [
      { name: 'slow', actor: WORD, options: { word: 'BAD', ms: 3000, else: 'ok' }, generation: 'word-BAD', onError: 'deny', onTimeout: 'deny', onTooLarge: 'deny' },
      { name: 'fast', actor: WORD, options: { word: 'BAD' }, generation: 'word-BAD', onError: 'deny', onTimeout: 'deny', onTooLarge: 'deny' },
    ],
  });
  // Load both actors first (a fresh worker imports them), so the time below is the judgement's own.
  await pool.judge([open('warm.txt', 'nothing\n')], { ...p, scanners: p.scanners.map((s) => ({ ...s, options: { ...s.options, ms: 0 } })) });
  const t1 = performance.now();
  const r = await pool.judge([fd], p);
  const ms = performance.now() - t1;
  if ('failed' in r) return t.fail(r.message);
  const answers = new Map(r.files[0]!.answers);
  t.deepEqual(answers.get('fast'), { answer: 'deny', reason: 'contains BAD' }, 'the requisite deny decides');
  t.false(answers.has('slow'), 'handed back before the slow scanner answered');
  t.true(ms < 2500, `handed back at the requisite deny, not after the 3 s scanner: ${ms.toFixed(0)} ms`);
  t.is(result(store, fd, p.generations, 'fast'), 'deny');
  await waitFor('the slow scanner writing its tag after the verdict', () => result(store, fd, p.generations, 'slow') === 'deny', 15_000);
  t.pass();
});

t0("a live lease of someone else is left to the main thread (which waits it out), and nothing is scanned", async (t) => {
  const { pool, open } = await setup(t);
  const fd = open('busy.txt', 'fine\n');
  const other = new TagStore({ namespace: 'trusted', key: KEY, host: 'elsewhere.example', pid: 4242 });
  t.is(other.begin(fd, 'word', 'word-BAD#0').status, 'leased');
  const r = await pool.judge([fd], policy());
  if ('failed' in r) return t.fail(r.message);
  t.deepEqual(r.files[0]!.slow, ['word']);
  t.deepEqual(r.files[0]!.scans, []);
});

t0('a batch that hangs is given up at its deadline, and every program its scans started is killed — more than one task slot holds', async (t) => {
  const { scratch, pool, open } = await setup(t);
  // A scanner program that never answers; its name is unique, so what is left of it can be counted.
  const prog = join(scratch.base, `hang-${process.pid}.sh`);
  writeFileSync(prog, '#!/bin/sh\nsleep 60\n', { mode: 0o755 });
  const running = () => {
    const r = spawnSync('pgrep', ['-fc', prog], { encoding: 'utf8' });
    return Number(r.stdout.trim() || '0');
  };
  const fds = Array.from({ length: 20 }, (_, i) => open(`h${i}.txt`, `file ${i}\n`));
  const p = policy({
    rules: [
      { name: 'hang', control: 'required' },
      { name: 'default', control: 'required', constant: { answer: 'allow', reason: 'default' } },
    ],
    generations: {},
    scanners: [{ name: 'hang', actor: 'exec', options: { program: prog, timeoutMs: 120_000 }, onError: 'deny', onTimeout: 'deny', onTooLarge: 'deny' }],
    timeoutMs: 10_000,
  });
  const judging = pool.judge(fds, p);
  // More than a task's 14 default group slots hold (an untracked one would outlive the batch).
  await waitFor('at least 15 programs running', () => running() >= 15, 20_000);
  const r = await judging;
  t.true('failed' in r && r.failed === 'timeout', JSON.stringify(r).slice(0, 200));
  await waitFor('every program of the batch gone', () => running() === 0, 10_000);
  t.pass();
});

t0('a policy crosses to a worker once and is referred to by id: each batch is judged with its own policy, old or new (a reload)', async (t) => {
  const { pool, open, store } = await setup(t);
  const a = policy(); // denies BAD
  const b = policy({ generations: { word: 'word-GOOD#0' }, scanners: [{ ...a.scanners[0]!, options: { word: 'GOOD' }, generation: 'word-GOOD' }] });
  const verdict = async (p: JudgePolicy, name: string) => {
    const r = await pool.judge([open(name, 'GOOD, not BAD\n')], p);
    if ('failed' in r) throw new Error(r.message);
    return new Map(r.files[0]!.answers).get('word');
  };
  t.deepEqual(await verdict(a, 'a1.txt'), { answer: 'deny', reason: 'contains BAD' });
  t.deepEqual(await verdict(a, 'a2.txt'), { answer: 'deny', reason: 'contains BAD' }, 'the same policy again (the worker has it by id)');
  t.deepEqual(await verdict(b, 'b1.txt'), { answer: 'deny', reason: 'contains GOOD' }, 'a new policy object is a new policy');
  t.deepEqual(await verdict(a, 'a3.txt'), { answer: 'deny', reason: 'contains BAD' }, 'a late batch of the old policy keeps its own');
  // The tag key and generation travelled too: the result tag verifies with the main thread's store under b's generation.
  const fd = open('b2.txt', 'GOOD\n');
  await pool.judge([fd], b);
  t.is(result(store, fd, b.generations, 'word'), 'deny');
});

t0("a scanner's maxSize is held to the file's stamped size in the worker: over it, the entry's onTooLarge answers and nothing is scanned", async (t) => {
  const { pool, open } = await setup(t);
  const p = policy({ scanners: [{ ...policy().scanners[0]!, maxSize: 100, onTooLarge: 'allow' }] });
  const small = open('small.txt', 'BAD\n');
  const large = open('large.txt', `BAD ${'x'.repeat(200)}\n`);
  const r = await pool.judge([small, large], p);
  if ('failed' in r) return t.fail(r.message);
  const [s, l] = r.files;
  t.deepEqual(new Map(s!.answers).get('word'), { answer: 'deny', reason: 'contains BAD' }, 'at 4 bytes it is scanned');
  const big = new Map(l!.answers).get('word');
  t.is(big?.answer, 'allow', 'onTooLarge answers');
  t.regex(big?.reason ?? '', /too-large: word: .*large\.txt is 205 bytes, over the limit of 100/);
  t.deepEqual(l!.scans, [], 'not scanned');
});
