// Serial: loading a million lines is synchronous work that would hold the other tests' timers.
// Broken and huge signature databases, as real files: a million signatures in one file, a FIFO and a device named
// like a database, nothing usable (empty directory, UTF-16), and megabytes of junk. Each must load, skip with a
// named warning, or fail loudly — never hang, never overflow, never flood the log, never pass everything silently.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants as fsc, mkdirSync, openSync, closeSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import signature from '../actors/signature.js';
import { DETAILED_PROBLEMS } from '../actors/signature/database.js';
import { EICAR, REPO_ROOT, tempDir, type TempDir } from './helpers/actor-files.js';

const SHIPPED_NDB = join(REPO_ROOT, 'signatures', 'blessd.ndb');

function withDir(t: { teardown(fn: () => void): void }): TempDir {
  const d = tempDir('blessd-sigdb-');
  t.teardown(() => d.cleanup());
  return d;
}

/** Fails the test (instead of hanging it) when `p` does not settle within `ms`. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

/** A FIFO reader blocked in open() is released by opening the write end: teardown does it, so nothing hangs. */
function releaseFifo(path: string) {
  try {
    closeSync(openSync(path, fsc.O_WRONLY | fsc.O_NONBLOCK));
  } catch {
    /* no reader waiting: nothing to release */
  }
}

test.serial('a million hash signatures in one file load, and the last one still matches', async (t) => {
  t.timeout(180_000);
  const d = withDir(t);
  const n = 1_000_000;
  const lines: string[] = new Array(n);
  for (let i = 0; i < n - 1; i++) lines[i] = `${createHash('sha256').update(`filler-${i}`).digest('hex')}:${100 + (i % 1000)}:Filler.${i}`;
  const target = Buffer.from('the very last signature of a million\n');
  lines[n - 1] = `${createHash('sha256').update(target).digest('hex')}:${target.length}:Million.Last`;
  const db = d.write('million.hsb', lines.join('\n') + '\n');
  const actor = await within(100_000, 'loading 1,000,000 signatures', Promise.resolve(signature.init({ databases: [db] })));
  t.deepEqual(actor.warnings, []);
  t.deepEqual(await actor.scan(d.open(d.write('target.txt', target))), { answer: 'deny', reason: 'Million.Last' });
  t.deepEqual(await actor.scan(d.open(d.write('clean.txt', 'nothing here\n'))), { answer: 'ok' });
});

test.serial('a million body signatures in one .ndb file load without overflowing the stack', async (t) => {
  t.timeout(180_000);
  const d = withDir(t);
  const n = 1_000_000;
  const lines: string[] = new Array(n);
  // Anchored at an offset: a million floating patterns is a different question (the matcher's size), this one is
  // about reading a file that long.
  for (let i = 0; i < n; i++) lines[i] = `Body.${i}:0:${i}:${Buffer.from(`pattern-${i}`).toString('hex')}`;
  const db = d.write('million.ndb', lines.join('\n') + '\n');
  const actor = await within(100_000, 'loading 1,000,000 body signatures', Promise.resolve(signature.init({ databases: [db] })));
  t.deepEqual(actor.warnings, []);
  const hit = Buffer.concat([Buffer.alloc(7), Buffer.from('pattern-7')]);
  t.deepEqual(await actor.scan(d.open(d.write('hit.bin', hit))), { answer: 'deny', reason: 'Body.7' });
});

test.serial('a FIFO named *.ndb in a database directory is skipped with a named warning, never opened blocking', async (t) => {
  const d = withDir(t);
  const dir = join(d.dir, 'db');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a-good.ndb'), `Good:0:*:${Buffer.from('GOOD-SIG').toString('hex')}\n`);
  const fifo = join(dir, 'b-fifo.ndb');
  execFileSync('mkfifo', [fifo]);
  t.teardown(() => releaseFifo(fifo));
  const actor = await within(30_000, 'loading a directory with a FIFO', Promise.resolve(signature.init({ databases: [dir] })));
  t.deepEqual(actor.warnings, [`${fifo}: not a regular file (a FIFO); skipped`]);
  t.deepEqual(await actor.scan(d.open(d.write('x.bin', 'xxGOOD-SIGxx'))), { answer: 'deny', reason: 'Good' });
});

test.serial('a FIFO or a device named as the only database is a load error naming it, not a hang', async (t) => {
  const d = withDir(t);
  const fifo = join(d.dir, 'only.ndb');
  execFileSync('mkfifo', [fifo]);
  t.teardown(() => releaseFifo(fifo));
  await t.throwsAsync(within(30_000, 'loading a FIFO', Promise.resolve(signature.init({ databases: [fifo] }))), {
    message: new RegExp(`no usable signature .*${fifo}: not a regular file \\(a FIFO\\)`),
  });
  const device = join(d.dir, 'zero.hdb');
  symlinkSync('/dev/zero', device);
  await t.throwsAsync(within(30_000, 'loading /dev/zero', Promise.resolve(signature.init({ databases: [device] }))), {
    message: /not a regular file \(a character device\)/,
  });
});

test.serial('zero usable signatures is an error: an empty directory, a UTF-16 file, a file of junk', async (t) => {
  const d = withDir(t);
  const empty = join(d.dir, 'empty');
  mkdirSync(empty);
  writeFileSync(join(empty, 'README'), 'not a database');
  await t.throwsAsync(async () => signature.init({ databases: [empty] }), { message: `signature: no usable signature (no database file in ${empty})` });

  // The shipped EICAR database, saved as UTF-16 by an editor.
  const utf16 = join(d.dir, 'utf16.ndb');
  writeFileSync(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(readFileSync(SHIPPED_NDB, 'latin1'), 'utf16le')]));
  await t.throwsAsync(async () => signature.init({ databases: [utf16] }), { message: /no usable signature .*UTF-16/ });
  // Without its byte-order mark, the NULs give it away.
  const bare = join(d.dir, 'utf16-bare.ndb');
  writeFileSync(bare, Buffer.from('Blessd.Test.EICAR:0:0:5835\n', 'utf16le'));
  await t.throwsAsync(async () => signature.init({ databases: [bare] }), { message: /no usable signature .*NUL/ });

  const junk = d.write('junk.hdb', 'not a signature\nneither is this\n');
  await t.throwsAsync(async () => signature.init({ databases: [junk] }), { message: new RegExp(`no usable signature .*${junk}:1: `) });
  // A good database next to the broken one keeps working (and the broken one is still named).
  const ok = await signature.init({ databases: [utf16, SHIPPED_NDB] });
  t.true(ok.warnings!.some((w) => w.startsWith(`${utf16}: UTF-16`)));
  t.deepEqual(await ok.scan(d.open(d.write('eicar.com', EICAR))), { answer: 'deny', reason: 'Blessd.Test.EICAR' });
});

test.serial('megabytes of junk lines are summarised: the first few with file:line, then one count', async (t) => {
  const d = withDir(t);
  const junkLines = 120_000; // ~3 MB
  const lines = Array.from({ length: junkLines }, (_, i) => `junk line ${i} ${'x'.repeat(12)}`);
  lines.splice(5000, 0, `Good:0:*:${Buffer.from('STILL-GOOD').toString('hex')}`);
  const db = d.write('junk.ndb', lines.join('\n') + '\n');
  const actor = await signature.init({ databases: [db] });
  const w = actor.warnings!;
  t.is(w.length, DETAILED_PROBLEMS + 1);
  for (let i = 0; i < DETAILED_PROBLEMS; i++) t.true(w[i]!.startsWith(`${db}:${i + 1}: `), w[i]);
  t.is(w[DETAILED_PROBLEMS], `${db}: ${junkLines - DETAILED_PROBLEMS} more bad lines skipped (${junkLines} in all; the first ${DETAILED_PROBLEMS} are shown)`);
  t.deepEqual(await actor.scan(d.open(d.write('g.bin', '..STILL-GOOD..'))), { answer: 'deny', reason: 'Good' });
});
