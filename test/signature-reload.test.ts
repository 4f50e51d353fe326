// Signature updates without a restart, for real: an unprivileged user runs a binary that passed; the admin adds its
// signature and reloads; the user's next exec and read are refused. And the other side: a reload onto a database
// with nothing usable is refused loudly and the old database keeps protecting; an empty one at start fails it.
import test from 'ava';
import { createHash } from 'node:crypto';
import { appendFile, copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import { Daemon } from '../src/daemon/daemon.js';
import { makeLogger } from '../src/daemon/logger.js';
import { ScanPool } from '../src/pool/scan-pool.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { tempDir, type TempDir } from './helpers/actor-files.js';
import { withDaemon, REPO } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('signature reload tests skipped: they need root');

const denied = /Operation not permitted/;
const SHIPPED_NDB = join(REPO, 'signatures', 'blessd.ndb');

/** The admin's database directory (outside the guard), starting with the shipped EICAR database. */
async function adminDatabases(t: { teardown(fn: () => void): void }): Promise<TempDir> {
  const d = tempDir('blessd-sigs-');
  t.teardown(() => d.cleanup());
  await copyFile(SHIPPED_NDB, join(d.dir, 'blessd.ndb'));
  return d;
}

const stackFor = (db: string) => `  - actor: signature
    options: { databases: [${db}] }
  - actor: default
    options: { answer: allow }`;

t0('a signature added and reloaded refuses the next exec and read of a binary that had passed, without a restart', async (t) => {
  t.timeout(90_000);
  const sigs = await adminDatabases(t);
  const h = await withDaemon(t, 'ext4', { stack: stackFor(sigs.dir), prepare: openToEveryone });
  const a = await makeAttacker(t);
  // The attacker brings a tool (several copies: the pool's two workers both scan some, and both cache the database).
  const tools = [0, 1, 2, 3, 4, 5].map((i) => join(h.dir, `tool${i}`));
  const setup = await a.sh(tools.map((p) => `cp /bin/echo ${p} && chmod 755 ${p}`).join(' && '));
  t.is(setup.code, 0, setup.stderr);
  const before = await Promise.all(tools.map((p) => a.run(p, ['ran'])));
  for (const r of before) t.deepEqual([r.code, r.stdout], [0, 'ran\n'], 'the tool passed the stack and ran');
  const genBefore = h.daemon.control().generations()['signature'];

  // The admin signs it (whole-file SHA-256) and reloads: nothing restarts.
  const digest = createHash('sha256').update(await readFile('/bin/echo')).digest('hex');
  await writeFile(join(sigs.dir, 'local.hsb'), `${digest}:*:Site.Banned.Tool\n`);
  await h.daemon.reload(h.config);
  t.not(h.daemon.control().generations()['signature'], genBefore, 'the database content is part of the generation');

  for (const p of tools) {
    const ex = await a.sh(`${p} ran; echo rc=$?`);
    t.notRegex(ex.stdout, /^ran$/m, `${p} must not run after the reload`);
    t.regex(ex.stdout, /rc=126/);
    const rd = await a.run('cat', [p]);
    t.not(rd.code, 0);
    t.regex(rd.stderr, denied, `${p} must not be readable after the reload`);
  }
  t.true(h.daemon.stats().verdicts.deny >= tools.length);
});

t0('a reload onto a database with nothing usable is refused and the old database keeps denying', async (t) => {
  t.timeout(60_000);
  const sigs = await adminDatabases(t);
  const h = await withDaemon(t, 'ext4', { stack: stackFor(sigs.dir), prepare: openToEveryone });
  const a = await makeAttacker(t);
  // Saved as UTF-16 by an editor: zero usable lines.
  await writeFile(join(sigs.dir, 'blessd.ndb'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(await readFile(SHIPPED_NDB, 'latin1'), 'utf16le')]));
  const genBefore = h.daemon.control().generations()['signature'];
  await t.throwsAsync(h.daemon.reload(h.config), { message: /no usable signature .*UTF-16/ });
  t.is(h.daemon.control().generations()['signature'], genBefore);
  // A fresh EICAR file (never scanned) is still refused: every worker keeps the old database.
  const files = [0, 1, 2, 3].map((i) => join(h.dir, `e${i}.com`));
  t.is((await a.sh(files.map((p) => `printf '%s' '${EICAR}' > ${p}`).join(' && '))).code, 0);
  for (const p of files) t.regex((await a.run('cat', [p])).stderr, denied, `${p} must be refused`);
});

t0('a signature scanner with nothing usable fails the start (fail closed), naming the file', async (t) => {
  const sigs = await adminDatabases(t);
  await appendFile(join(sigs.dir, 'blessd.ndb'), ''); // keep the file, empty the content below
  await writeFile(join(sigs.dir, 'blessd.ndb'), '# nothing but a comment\n');
  let started: Daemon | undefined;
  const err = await t.throwsAsync(
    withDaemon(t, 'tmpfs', { stack: stackFor(sigs.dir) }).then((h) => {
      started = h.daemon;
    }),
  );
  t.is(started, undefined);
  t.regex(err!.message, /no usable signature/);
  t.regex(err!.message, new RegExp(join(sigs.dir, 'blessd.ndb').replace(/[.]/g, '\\.')));
});

test('describe() after a database change reaches every worker: no scan uses the old database', async (t) => {
  const d = tempDir('blessd-pool-');
  const pool = new ScanPool({ threads: 2 });
  t.teardown(async () => {
    await pool.close();
    d.cleanup();
  });
  const db = d.write('site.ndb', `Old.Sig:0:*:${Buffer.from('OLD-MARKER').toString('hex')}\n`);
  const entry = { name: 'signature', actor: 'signature', options: { databases: [db] } };
  const gen1 = (await pool.describe(entry)).generation;
  const file = (name: string, content: string) => {
    const ff = d.open(d.write(name, content));
    return { fd: ff.fd, size: ff.size, path: ff.path };
  };
  const f = file('new.bin', '..NEW-MARKER..');
  // Both workers busy at once, so both hold the first database.
  const first = await Promise.all(Array.from({ length: 8 }, () => pool.scan(f, { ...entry, generation: gen1 }, { timeoutMs: 10_000 })));
  for (const o of first) t.like(o, { kind: 'answer', answer: 'ok', generation: gen1 });

  d.write('site.ndb', `New.Sig:0:*:${Buffer.from('NEW-MARKER').toString('hex')}\n`);
  const gen2 = (await pool.describe(entry)).generation;
  t.not(gen2, gen1);
  const second = await Promise.all(Array.from({ length: 8 }, () => pool.scan(f, { ...entry, generation: gen2 }, { timeoutMs: 10_000 })));
  for (const o of second) t.like(o, { kind: 'answer', answer: 'deny', reason: 'New.Sig', generation: gen2 });

  // The disk changed again without a describe: a fresh worker can only load what is there now, scans with it, and
  // says so (its result carries the generation it used, not gen2).
  d.write('site.ndb', `Third.Sig:0:*:${Buffer.from('NEW-MARKER').toString('hex')}\n`);
  const fresh = new ScanPool({ threads: 1 });
  t.teardown(() => fresh.close());
  const stale = await fresh.scan(f, { ...entry, generation: gen2 }, { timeoutMs: 10_000 });
  t.like(stale, { kind: 'answer', answer: 'deny', reason: 'Third.Sig' });
  t.not((stale as { generation: string }).generation, gen2);
});
