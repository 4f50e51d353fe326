// The indexer example (examples/indexer): an observe entry in a real daemon keeps a full-text SQLite index of the
// guarded files, tags what it indexed, never gates (EICAR is still denied by signature, text passes at once), and
// indexes a file again after it changed; follow.js, subscribed to dirty notices, hides a file's old words from
// search.js from the first write on, until the new content is indexed.
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { EICAR } from './helpers/actor-files.js';
import { runChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';
import { lineChild, withNotify } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

// better-sqlite3 ships no types; the test reads the index the way search.js does.
const Database = createRequire(import.meta.url)('better-sqlite3') as new (path: string, opts: { readonly: boolean }) => {
  prepare(sql: string): { all(): unknown[] };
  close(): void;
};
const INDEXER = join(REPO, 'examples/indexer/index.js');
const SEARCH = join(REPO, 'examples/indexer/search.js');
const FOLLOW = join(REPO, 'examples/indexer/follow.js');
const BLESSCTL = join(REPO, 'dist/src/cli/blessctl.js');

test('ext4: the indexer example indexes what blessd hands it, as an observe entry, and again after a change', async (t) => {
  if (!isRoot()) return t.pass('needs root (fanotify, scratch mounts)');
  const work = await mkdtemp(join(tmpdir(), 'blessd-index-'));
  t.teardown(() => rm(work, { recursive: true, force: true }));
  const database = join(work, 'index.sqlite');
  const h = await withNotify(t, 'ext4', {
    stack: `  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: ${INDEXER}
    name: index
    control: observe
    options: { database: ${database} }
  - actor: default
    options: { answer: allow }`,
    async prepare(dir) {
      writeFileSync(join(dir, 'notes.txt'), 'the quick brown fox\n');
      writeFileSync(join(dir, 'logo.bin'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0x0d, 0xff]));
      writeFileSync(join(dir, 'eicar.com'), EICAR);
    },
  });
  const notes = join(h.dir, 'notes.txt');
  const search = async (q: string, ...flags: string[]) => {
    const r = await runChild('node', [SEARCH, database, q, ...flags], { timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`search ${q}: ${r.stderr}`);
    return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]);
  };
  const rows = () => {
    const db = new Database(database, { readonly: true });
    try {
      return db.prepare('SELECT path, kind FROM files ORDER BY path').all() as { path: string; kind: string }[];
    } finally {
      db.close();
    }
  };

  t.is((await runChild('cat', [notes])).stdout, 'the quick brown fox\n');
  t.is((await runChild('cat', [join(h.dir, 'logo.bin')])).code, 0);
  t.regex((await runChild('cat', [join(h.dir, 'eicar.com')])).stderr, /Operation not permitted/);
  // The gate never waits for an observe entry: its rows arrive when its scans are done.
  await waitFor('notes.txt in the index', async () => (await search('fox')).includes(notes), 20_000, 100);
  t.deepEqual(await search('fox'), [notes]);
  t.deepEqual(await search('lazy'), []);

  // Its tag: answer ok ("no comment"), valid.
  const tags = await runChild('node', [BLESSCTL, 'tags', notes, '--json', '--key', h.config.tags.keyFile, '--state-dir', h.state], { timeoutMs: 20_000 });
  const index = (JSON.parse(tags.stdout) as { tags: { scanner: string; judgement: string; answer: string }[] }).tags.find((x) => x.scanner === 'index');
  t.like(index, { judgement: 'valid', answer: 'ok' });

  // A writer that keeps the file open: the first write is a dirty notice; the rescan waits for the close.
  const follow = lineChild(t, 'node', [FOLLOW, h.socket, database]);
  await follow.waitFor((l) => l === 'following', 15_000, 'follow.js subscribed');
  const writer = lineChild(t, 'sh', ['-c', `exec 3>>${notes}; printf 'sneaky words\\n' >&3; echo written; read _; exec 3>&-`]);
  await writer.waitFor((l) => l === 'written', 10_000, 'the writer wrote');
  await follow.waitFor((l) => l === `stale ${notes}`, 15_000, 'follow.js marking notes.txt stale');
  t.deepEqual(await search('fox'), [], 'a changed file is not found by words it may no longer hold');
  t.deepEqual(await search('fox', '--stale'), [notes]);
  writer.child.stdin!.end('\n'); // the writer closes: blessd judges the new content, the indexer indexes it
  await waitFor('the appended words indexed after the close', async () => (await search('sneaky')).includes(notes), 20_000, 100);
  t.deepEqual(await search('fox'), [notes]);

  writeFileSync(notes, 'jumps over the lazy dog\n');
  t.is((await runChild('cat', [notes])).stdout, 'jumps over the lazy dog\n');
  await waitFor('the changed notes.txt indexed again', async () => (await search('lazy')).includes(notes), 20_000, 100);
  t.deepEqual(await search('fox'), []);
  // Binaries are indexed by metadata only (no text row), each file once.
  t.deepEqual(rows(), [
    { path: join(h.dir, 'eicar.com'), kind: 'text' },
    { path: join(h.dir, 'logo.bin'), kind: 'binary' },
    { path: notes, kind: 'text' },
  ]);
});
