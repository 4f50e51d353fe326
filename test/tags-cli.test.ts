// blessctl tags / tags clear / generation bump, run as a real process against real tags.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTagKey } from '../src/tags/key.js';
import { KINDS, store, tagScratch } from './helpers/tag-files.js';
import { runChild } from './helpers/child.js';

const BLESSCTL = fileURLToPath(new URL('../src/cli/blessctl.js', import.meta.url));
/**
 * blessctl as a real process. Its bound is a failure that says so (a process killed by it used to show up as a wrong
 * exit code), and is generous: a node start on a loaded 2-core machine takes seconds, and the test only cares that
 * the process ends with the right output and code.
 */
async function blessctl(...args: string[]) {
  const boundMs = 60_000;
  const r = await runChild(process.execPath, [BLESSCTL, ...args], { timeoutMs: boundMs });
  if (r.signal !== null) throw new Error(`blessctl ${args.join(' ')}: killed by ${r.signal} after ${r.ms.toFixed(0)} ms (bound ${boundMs} ms); stderr: ${r.stderr}`);
  return r;
}

async function setup(t: Parameters<typeof tagScratch>[0], kind: 'ext4' | 'tmpfs') {
  const s = await tagScratch(t, kind);
  const startedAt = Date.now();
  const state = mkdtempSync(join(tmpdir(), 'blessd-cli-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const keyPath = join(state, 'tag.key');
  const key = await loadTagKey(keyPath);
  const tags = store(key);
  const { fd, path } = s.file('eicar.com', 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR');
  for (const [scanner, answer] of [['clamav', { answer: 'deny', reason: 'Eicar-Signature \x1b[31mFOUND' }], ['yara', { answer: 'ok' }]] as const) {
    const lease = tags.begin(fd, scanner);
    if (lease.status !== 'leased') throw new Error('no lease');
    await tags.finish(fd, scanner, lease.token, answer, 'db-1#0');
  }
  const taggedBy = Date.now();
  const opts = ['--key', keyPath, '--state-dir', state];
  return { s, path, opts, state, fd, key, written: { from: startedAt, to: taggedBy } };
}

for (const kind of KINDS) {
  test(`${kind}: blessctl tags prints each tag decoded and judged; --json parses`, async (t) => {
    const { path, opts, written } = await setup(t, kind);
    const human = await blessctl('tags', path, ...opts);
    t.is(human.code, 0, human.stderr);
    t.regex(human.stdout, /SCANNER\s+JUDGEMENT\s+ANSWER\s+GENERATION/);
    t.regex(human.stdout, /clamav\s+valid\s+deny\s+db-1#0/);
    t.regex(human.stdout, /yara\s+valid\s+ok\s+db-1#0/);
    t.true(human.stdout.includes('Eicar-Signature \\x1b[31mFOUND'), 'control characters are escaped');
    t.false(human.stdout.includes('\x1b'));

    const json = await blessctl('tags', path, '--json', ...opts);
    t.is(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    t.is(report.path, path);
    t.is(report.namespace, 'trusted');
    t.is(report.tags.length, 2);
    t.like(report.tags[0], { name: 'trusted.scanned-by.clamav', scanner: 'clamav', judgement: 'valid', kind: 'result', answer: 'deny', reason: 'Eicar-Signature \x1b[31mFOUND', generation: 'db-1#0', digest: null });
    t.deepEqual(report.tags[0].stamp, report.stamp);
    // The tag's time is when setup wrote it (the clock brackets it), not merely "recent".
    t.true(report.tags[0].time >= written.from && report.tags[0].time <= written.to, `tag time ${report.tags[0].time} within [${written.from}, ${written.to}]`);
  });
}

test('generation bump makes blessctl show stale-generation; tags clear removes the tags', async (t) => {
  const { path, opts } = await setup(t, 'ext4');
  const bump = await blessctl('generation', 'bump', 'clamav', ...opts);
  t.is(bump.code, 0, bump.stderr);
  t.regex(bump.stdout, /clamav: bump counter is now 1/);
  const after = JSON.parse((await blessctl('tags', path, '--json', ...opts)).stdout);
  t.like(after.tags[0], { scanner: 'clamav', judgement: 'stale-generation', detail: 'bump counter #0, current #1' });
  t.like(after.tags[1], { scanner: 'yara', judgement: 'valid' });

  const cleared = await blessctl('tags', 'clear', path, ...opts);
  t.is(cleared.code, 0, cleared.stderr);
  t.regex(cleared.stdout, /removed trusted\.scanned-by\.clamav/);
  t.regex(cleared.stdout, /removed trusted\.scanned-by\.yara/);
  const none = await blessctl('tags', path, ...opts);
  t.regex(none.stdout, /no trusted\.scanned-by\.\* tags/);
});

test('blessctl shows a tampered tag as bad-mac and a junk one as unparseable', async (t) => {
  const { path, opts, state, key } = await setup(t, 'tmpfs');
  const { native } = await import('../src/gate/addon.js');
  native.setXattr(path, 'trusted.scanned-by.junk', Buffer.from([0xff, 0, 1]));
  const other = await loadTagKey(join(state, 'other.key'));
  t.false(other.equals(key), 'a key of its own, not the one the tags were written with');
  const r = await blessctl('tags', path, '--json', ...opts.map((o) => (o.endsWith('tag.key') ? join(state, 'other.key') : o)));
  const by = Object.fromEntries(JSON.parse(r.stdout).tags.map((x: { scanner: string; judgement: string }) => [x.scanner, x.judgement]));
  t.deepEqual(by, { clamav: 'bad-mac', junk: 'unparseable', yara: 'bad-mac' });
});

test('exit codes: 1 with the path named for runtime errors, 2 for usage errors', async (t) => {
  const { s, opts } = await setup(t, 'tmpfs');
  const missing = join(s.scratch.dir, 'no such file');
  const r1 = await blessctl('tags', missing, ...opts);
  t.is(r1.code, 1);
  t.true(r1.stderr.includes(missing));
  const r1b = await blessctl('tags', missing, '--key', join(s.scratch.dir, 'nokey'));
  t.is(r1b.code, 1);
  t.true(r1b.stderr.includes(join(s.scratch.dir, 'nokey')));
  const r1c = await blessctl('tags', 'clear', missing, ...opts);
  t.is(r1c.code, 1);
  t.true(r1c.stderr.includes(missing));
  for (const args of [[], ['nope'], ['tags'], ['tags', 'a', 'b'], ['tags', 'x', '--namespace', 'system'], ['tags', 'x', '--bogus'], ['generation', 'bump'], ['generation', 'bump', 'Bad Name'], ['generation', 'up', 'clamav']]) {
    const r = await blessctl(...args);
    t.is(r.code, 2, `blessctl ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, /Usage: blessctl/);
  }
  const help = await blessctl('tags', '--help');
  t.is(help.code, 0);
  t.regex(help.stdout, /tags clear PATH/);
});
