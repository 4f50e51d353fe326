import test from 'ava';
import { closeSync, existsSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveFailure, RETRY, type FailurePolicy } from '../src/pool/failure.js';
import { ScanPool, type PoolEntry, type ScanOutcome } from '../src/pool/scan-pool.js';
import { EICAR, REPO_ROOT, tempDir, type TempDir } from './helpers/actor-files.js';
import { waitFor } from './helpers/wait.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}.js`, import.meta.url));
const HANGING: PoolEntry = { name: 'hanging', actor: fixture('hanging-actor') };
const THROWING: PoolEntry = { name: 'throwing', actor: fixture('throwing-actor') };
const ALLOW: PoolEntry = { name: 'last', actor: 'default', options: { answer: 'allow' } };
const SIGNATURES: PoolEntry = { name: 'clam', actor: 'signature', options: { databases: [join(REPO_ROOT, 'signatures')] } };

interface Ctx {
  dir: TempDir;
  pool: ScanPool;
  /** Open a file for the pool: the test owns the fd (as the daemon would) and closes it at teardown. */
  file(name: string, content: string | Buffer): { fd: number; size: number; path: string };
}

function setup(t: { teardown(fn: () => void | Promise<void>): void }, threads = 3): Ctx {
  const dir = tempDir('blessd-pool-');
  const pool = new ScanPool({ threads });
  const fds: number[] = [];
  t.teardown(async () => {
    await pool.close();
    for (const fd of fds) closeSync(fd);
    dir.cleanup();
  });
  return {
    dir,
    pool,
    file(name, content) {
      const path = dir.write(name, content);
      const fd = openSync(path, 'r');
      fds.push(fd);
      return { fd, size: fstatSync(fd).size, path };
    },
  };
}

const answer = (o: ScanOutcome) => (o.kind === 'answer' ? { answer: o.answer, reason: o.reason } : { error: o.code, message: o.message });

test('three actors scan one file in parallel, each in its own task', async (t) => {
  const { pool, file, dir } = setup(t, 3);
  const grep = dir.write('grep.sh', '#!/bin/sh\nif grep -q EICAR; then echo "EICAR string"; exit 1; fi\nexit 0\n');
  (await import('node:fs')).chmodSync(grep, 0o755);
  const f = file('eicar.com', EICAR);
  const entries: PoolEntry[] = [
    SIGNATURES,
    { name: 'grep', actor: 'exec', options: { program: grep, timeoutMs: 10_000 } },
    { name: 'list', actor: 'expected', options: { paths: ['/nowhere/**'] } },
  ];
  const outcomes = await Promise.all(entries.map((e) => pool.scan(f, e, { timeoutMs: 20_000 })));
  t.deepEqual(outcomes.map(answer), [
    { answer: 'deny', reason: 'Blessd.Test.EICAR' },
    { answer: 'deny', reason: 'EICAR string' },
    { answer: 'deny', reason: 'not expected' },
  ]);
  for (const o of outcomes) if (o.kind === 'answer') t.regex(o.generation, /^[0-9a-f]{64}$/);

  // Overlap, measured by the actors themselves: every scan started before any ended. They meet first (each waits
  // until all three run), so a late worker on a loaded machine is waited for, and scans run in turn never meet.
  const meet = join(dir.dir, 'meet');
  (await import('node:fs')).mkdirSync(meet);
  const sleepy = (n: number): PoolEntry => ({ name: `sleepy${n}`, actor: fixture('sleepy-actor'), options: { ms: 50, n, meet, of: 3 } });
  const runs = await Promise.all([1, 2, 3].map((n) => pool.scan(f, sleepy(n), { timeoutMs: 20_000 })));
  const spans = runs.map((o) => {
    t.is(o.kind, 'answer');
    const [start, end, head] = (o.kind === 'answer' ? o.reason! : '').split('-');
    t.is(head, 'X5O!P', 'each worker reads the shared fd');
    return [Number(start), Number(end)] as const;
  });
  t.true(Math.max(...spans.map((s) => s[0])) < Math.min(...spans.map((s) => s[1])), JSON.stringify(spans));
});

test('describe() reports generation and warnings; generation() matches the scans', async (t) => {
  const { pool, file, dir } = setup(t, 2);
  const db = dir.write('mixed.ndb', 'Bad:0:EP+0:4142\nGood:0:*:41424344\n');
  const entry: PoolEntry = { name: 'sigs', actor: 'signature', options: { databases: [db] } };
  const d = await pool.describe(entry);
  t.is(d.manifest.name, 'signature');
  t.is(d.warnings.length, 1);
  t.true(d.warnings[0]!.startsWith(`${db}:1: `));
  t.is(await pool.generation(entry), d.generation);
  const o = await pool.scan(file('f', 'xxABCDxx'), entry, { timeoutMs: 10_000 });
  t.like(o, { kind: 'answer', answer: 'deny', reason: 'Good', generation: d.generation });
  await t.throwsAsync(pool.generation({ name: 'bad', actor: 'signature', options: {} }), { code: 'POOL_LOAD', message: /bad: signature: options\.databases/ } as never);
});

test('a hanging actor times out, and the pool still answers the next scans', async (t) => {
  const { pool, file } = setup(t, 2);
  const f = file('f', 'content');
  const started = Date.now();
  const [hung, meanwhile] = await Promise.all([
    pool.scan(f, HANGING, { timeoutMs: 400 }),
    pool.scan(f, ALLOW, { timeoutMs: 10_000 }),
  ]);
  t.is(hung.kind, 'error');
  t.like(hung, { code: 'timeout' });
  t.true(Date.now() - started < 10_000);
  t.deepEqual(answer(meanwhile), { answer: 'allow', reason: 'default' });
  // Again, more times than there are threads: each timeout costs a worker, which must come back.
  for (let i = 0; i < 3; i++) t.like(await pool.scan(f, HANGING, { timeoutMs: 200 }), { kind: 'error', code: 'timeout' });
  const after = await Promise.all([1, 2, 3, 4].map(() => pool.scan(f, ALLOW, { timeoutMs: 10_000 })));
  t.deepEqual(after.map(answer), Array(4).fill({ answer: 'allow', reason: 'default' }));
});

test('a throwing actor is a crash; a bad module or bad options is a load error', async (t) => {
  const { pool, file } = setup(t, 2);
  const f = file('thing.bin', 'x');
  const crash = await pool.scan(f, THROWING, { timeoutMs: 10_000 });
  t.like(crash, { kind: 'error', code: 'crash' });
  t.regex((crash as { message: string }).message, /^throwing: boom while scanning .*thing\.bin/);
  t.like(await pool.scan(f, { name: 'x', actor: fixture('not-an-actor') }, { timeoutMs: 10_000 }), { kind: 'error', code: 'load' });
  t.like(await pool.scan(f, { name: 'y', actor: '/nonexistent/actor.js' }, { timeoutMs: 10_000 }), { kind: 'error', code: 'load' });
  t.like(await pool.scan(f, { name: 'z', actor: 'no-such-built-in' }, { timeoutMs: 10_000 }), { kind: 'error', code: 'load' });
  const bad = await pool.scan(f, { name: 'd', actor: 'default', options: { answer: 'maybe' } }, { timeoutMs: 10_000 });
  t.like(bad, { kind: 'error', code: 'load', message: "d: default: options.answer must be 'allow' or 'deny'" });
  t.deepEqual(answer(await pool.scan(f, ALLOW, { timeoutMs: 10_000 })), { answer: 'allow', reason: 'default' });
});

test('an exec program timeout inside the actor is a timeout outcome', async (t) => {
  const { pool, file, dir } = setup(t, 1);
  const hang = dir.write('hang.sh', '#!/bin/sh\nexec sleep 30\n');
  (await import('node:fs')).chmodSync(hang, 0o755);
  const o = await pool.scan(file('f', 'x'), { name: 'slow', actor: 'exec', options: { program: hang, timeoutMs: 300 } }, { timeoutMs: 10_000 });
  t.like(o, { kind: 'error', code: 'timeout' });
  t.regex((o as { message: string }).message, /hang\.sh did not finish within 300 ms/);
});

test('a file over the entry size limit is too-large, without scanning', async (t) => {
  const { pool, file } = setup(t, 1);
  const f = file('big', Buffer.alloc(100));
  // The throwing actor would crash if it ran at all.
  const o = await pool.scan(f, { ...THROWING, maxSize: 99 }, { timeoutMs: 10_000 });
  t.like(o, { kind: 'error', code: 'too-large' });
  t.regex((o as { message: string }).message, /100 bytes, over the limit of 99/);
  t.like(await pool.scan(f, { ...ALLOW, maxSize: 100 }, { timeoutMs: 10_000 }), { kind: 'answer', answer: 'allow' });
});

test("the caller's abort signal rejects the scan; close() ends, even with a hanging actor in flight", async (t) => {
  const dir = tempDir('blessd-pool-close-');
  const pool = new ScanPool({ threads: 2 });
  const path = dir.write('f', 'x');
  const fd = openSync(path, 'r');
  t.teardown(() => {
    closeSync(fd);
    dir.cleanup();
  });
  const f = { fd, size: 1, path };
  const ac = new AbortController();
  // The hanging actor says when its scan runs: abort and close act on a scan in flight, not one still queued.
  const startedLog = join(dir.dir, 'started');
  const hanging: PoolEntry = { ...HANGING, options: { started: startedLog } };
  const scansStarted = () => (existsSync(startedLog) ? readFileSync(startedLog, 'utf8').split('\n').length - 1 : 0);
  const aborted = pool.scan(f, hanging, { timeoutMs: 60_000, signal: ac.signal });
  await waitFor('the hanging scan to run in a worker', () => scansStarted() >= 1);
  ac.abort(new Error('file dirtied'));
  await t.throwsAsync(aborted, { message: 'file dirtied' });

  const inFlight = pool.scan(f, hanging, { timeoutMs: 60_000 });
  await waitFor('the second hanging scan to run in a worker', () => scansStarted() >= 2);
  const started = Date.now();
  await pool.close();
  t.true(Date.now() - started < 10_000);
  await t.throwsAsync(inFlight, { code: 'POOL_CLOSED' } as never);
  await t.throwsAsync(pool.scan(f, ALLOW, { timeoutMs: 1000 }), { code: 'POOL_CLOSED' } as never);
  await pool.close(); // idempotent
});

test('ScanPool checks its options', (t) => {
  t.throws(() => new ScanPool({ threads: 0 }), { message: 'ScanPool: options.threads must be a positive integer' });
  t.throws(() => new ScanPool({ threads: 1, chunkSize: -1 }), { message: /options\.chunkSize/ });
});

const POLICY: FailurePolicy = { onError: 'deny', onTimeout: 'retry', onTooLarge: 'allow' };

test('resolveFailure maps outcomes through the policy, retrying once', (t) => {
  const timeout: ScanOutcome = { kind: 'error', code: 'timeout', message: 'slow' };
  t.is(resolveFailure(timeout, POLICY), RETRY);
  t.deepEqual(resolveFailure(timeout, POLICY, { retried: true }), { answer: 'deny', reason: 'timeout: slow (no retry left)' });
  t.deepEqual(resolveFailure({ kind: 'error', code: 'crash', message: 'boom' }, POLICY), { answer: 'deny', reason: 'crash: boom' });
  t.deepEqual(resolveFailure({ kind: 'error', code: 'load', message: 'no db' }, { ...POLICY, onError: 'ok' }), { answer: 'ok', reason: 'load: no db' });
  t.deepEqual(resolveFailure({ kind: 'error', code: 'too-large', message: 'big' }, POLICY), { answer: 'allow', reason: 'too-large: big' });
  t.deepEqual(resolveFailure({ kind: 'error', code: 'too-large', message: 'big' }, { ...POLICY, onTooLarge: 'retry' }), {
    answer: 'deny',
    reason: 'too-large: big (no retry left)',
  });
  t.deepEqual(resolveFailure({ kind: 'answer', answer: 'ok', ms: 1, generation: 'g' }, POLICY), { answer: 'ok' });
  t.deepEqual(resolveFailure({ kind: 'answer', answer: 'deny', reason: 'sig', ms: 1, generation: 'g' }, POLICY), { answer: 'deny', reason: 'sig' });
});

test('closing pools while workers are being replaced does not take the process down', async (t) => {
  // Regression: a worker terminated while Piscina require()s an ES module aborts the process (see scan-pool.ts).
  const dir = tempDir('blessd-pool-churn-');
  const path = dir.write('f', 'x');
  const fd = openSync(path, 'r');
  t.teardown(() => {
    closeSync(fd);
    dir.cleanup();
  });
  for (let i = 0; i < 12; i++) {
    const pool = new ScanPool({ threads: 2 });
    const cut = pool.scan({ fd, size: 1, path }, HANGING, { timeoutMs: 30 + (i % 4) * 20 }); // a replacement starts
    const flight = pool.scan({ fd, size: 1, path }, HANGING, { timeoutMs: 60_000 }).catch((err: { code?: string }) => err.code);
    await cut;
    await pool.close();
    t.is(await flight, 'POOL_CLOSED');
  }
});
