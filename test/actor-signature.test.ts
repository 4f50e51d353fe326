import test from 'ava';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import signature from '../actors/signature.js';
import { EICAR, REPO_ROOT, tempDir, type TempDir } from './helpers/actor-files.js';

const hex = (b: Buffer | string) => Buffer.from(b).toString('hex');
const SHIPPED = join(REPO_ROOT, 'signatures');

function withDir(t: { teardown(fn: () => void): void }): TempDir {
  const d = tempDir();
  t.teardown(() => d.cleanup());
  return d;
}

test('EICAR is detected by the shipped .ndb alone', async (t) => {
  const d = withDir(t);
  const actor = await signature.init({ databases: [join(SHIPPED, 'blessd.ndb')] });
  t.deepEqual(actor.warnings, []);
  t.deepEqual(await actor.scan(d.open(d.write('eicar.com', EICAR))), { answer: 'deny', reason: 'Blessd.Test.EICAR' });
  t.deepEqual(await actor.scan(d.open(d.write('clean.txt', 'hello world\n'))), { answer: 'ok' });
});

test('EICAR is detected by the shipped .hdb alone (MD5 and size)', async (t) => {
  const d = withDir(t);
  t.is(createHash('md5').update(EICAR).digest('hex'), '44d88612fea8a8f36de82e1278abb02f');
  t.is(EICAR.length, 68);
  const actor = await signature.init({ databases: [join(SHIPPED, 'blessd.hdb')] });
  t.deepEqual(actor.warnings, []);
  t.deepEqual(await actor.scan(d.open(d.write('eicar.com', EICAR))), { answer: 'deny', reason: 'Blessd.Test.EICAR.MD5' });
  // The hash database alone does not see EICAR inside a bigger file: hashes cover whole files.
  const padded = Buffer.concat([EICAR, Buffer.from('\n')]);
  t.deepEqual(await actor.scan(d.open(d.write('padded.com', padded))), { answer: 'ok' });
});

test('a directory of databases loads every .hdb, .hsb and .ndb in it', async (t) => {
  const d = withDir(t);
  const actor = await signature.init({ databases: [SHIPPED] });
  t.deepEqual(actor.warnings, []);
  const r = await actor.scan(d.open(d.write('eicar.com', EICAR)));
  t.is(r.answer, 'deny');
});

test('a pattern split across a chunk border matches, at every split point', async (t) => {
  const d = withDir(t);
  const pattern = Buffer.from('Blessd-Border-Pattern-0123456789');
  d.write('border.ndb', `Border:0:*:${hex(pattern)}\n`);
  const chunk = 64;
  const actor = await signature.init({ databases: [join(d.dir, 'border.ndb')], chunkSize: chunk });
  for (let split = 1; split < pattern.length; split++) {
    const content = Buffer.alloc(chunk * 4, 0x61);
    pattern.copy(content, chunk * 2 - split);
    const r = await actor.scan(d.open(d.write(`split-${split}.bin`, content)));
    t.deepEqual(r, { answer: 'deny', reason: 'Border' }, `split ${split}`);
  }
  // One byte short of the pattern across the border: no match.
  const near = Buffer.alloc(chunk * 4, 0x61);
  pattern.subarray(0, pattern.length - 1).copy(near, chunk - 5);
  t.deepEqual(await actor.scan(d.open(d.write('near.bin', near))), { answer: 'ok' });
});

test('a pattern across the default 1 MiB chunk border matches', async (t) => {
  const d = withDir(t);
  const pattern = Buffer.from('Blessd-MiB-Border');
  d.write('mib.ndb', `MiB:0:*:${hex(pattern)}\n`);
  const actor = await signature.init({ databases: [join(d.dir, 'mib.ndb')] });
  const content = Buffer.alloc((1 << 20) + 4096, 0x20);
  pattern.copy(content, (1 << 20) - 7);
  t.deepEqual(await actor.scan(d.open(d.write('mib.bin', content))), { answer: 'deny', reason: 'MiB' });
});

test('an anchored offset matches only at that offset, also across a chunk border', async (t) => {
  const d = withDir(t);
  const pattern = Buffer.from('ANCHOR!');
  d.write('anchor.ndb', `Anchored:0:100:${hex(pattern)}\n`);
  const actor = await signature.init({ databases: [join(d.dir, 'anchor.ndb')], chunkSize: 32 });
  for (const at of [99, 100, 101, 0, 200]) {
    const content = Buffer.alloc(300, 0x2e);
    pattern.copy(content, at);
    const r = await actor.scan(d.open(d.write(`at-${at}.bin`, content)));
    t.deepEqual(r, at === 100 ? { answer: 'deny', reason: 'Anchored' } : { answer: 'ok' }, `pattern at ${at}`);
  }
  // A file that ends inside the window does not match.
  t.deepEqual(await actor.scan(d.open(d.write('short.bin', Buffer.concat([Buffer.alloc(100, 0x2e), pattern.subarray(0, 3)])))), {
    answer: 'ok',
  });
});

test('.hsb with size * matches any size; a sized .hsb only its size', async (t) => {
  const d = withDir(t);
  const content = Buffer.from('some content worth hashing\n');
  const sha = createHash('sha256').update(content).digest('hex');
  d.write('any.hsb', `${sha}:*:AnySize\n`);
  d.write('sized.hsb', `${sha}:${content.length + 1}:WrongSize\n`);
  const any = await signature.init({ databases: [join(d.dir, 'any.hsb')] });
  const sized = await signature.init({ databases: [join(d.dir, 'sized.hsb')] });
  const file = d.write('content.txt', content);
  t.deepEqual(await any.scan(d.open(file)), { answer: 'deny', reason: 'AnySize' });
  t.deepEqual(await sized.scan(d.open(file)), { answer: 'ok' });
});

test('bad database lines are warnings naming file:line, and the good lines still work', async (t) => {
  const d = withDir(t);
  const good = Buffer.from('GOOD-PATTERN');
  const db = d.write(
    'mixed.ndb',
    [
      '# a comment',
      `Wild:0:*:4142(B)43`, // 2: a boundary marker (not supported)
      `BadHex:0:*:41424`, // 3: odd length
      `EP:0:EP+0:${hex('abcd')}`, // 4: offset syntax we do not support
      `Few:0:*`, // 5: too few fields
      `Type:99:*:${hex('abcd')}`, // 6: unknown target type
      `Good:0:*:${hex(good)}`, // 7: fine
      `NotHex:0:*:zz11`, // 8: bad hex
    ].join('\n') + '\n',
  );
  const hdb = d.write('mixed.hdb', ['44d88612fea8a8f36de82e1278abb02f:68', 'abc:68:Short', '44d88612fea8a8f36de82e1278abb02f:sixty:Name'].join('\n'));
  const actor = await signature.init({ databases: [db, hdb] });
  const w = actor.warnings ?? [];
  for (const line of [2, 3, 4, 5, 6, 8]) t.true(w.some((m) => m.startsWith(`${db}:${line}: `)), `warning for ${db}:${line}`);
  for (const line of [1, 2, 3]) t.true(w.some((m) => m.startsWith(`${hdb}:${line}: `)), `warning for ${hdb}:${line}`);
  t.is(w.length, 9);
  t.regex(w.find((m) => m.startsWith(`${db}:4:`))!, /EP\+0/);
  t.regex(w.find((m) => m.startsWith(`${db}:2:`))!, /\(B\) boundaries are not supported/);
  t.deepEqual(await actor.scan(d.open(d.write('good.bin', Buffer.concat([Buffer.from('xx'), good])))), { answer: 'deny', reason: 'Good' });
  t.deepEqual(await actor.scan(d.open(d.write('clean.bin', 'ABCD abcd'))), { answer: 'ok' });
});

test('an unreadable database path is an error naming it; bad options name the option', async (t) => {
  const d = withDir(t);
  const missing = join(d.dir, 'nope.ndb');
  await t.throwsAsync(async () => signature.init({ databases: [missing] }), { message: new RegExp(missing.replace(/[.]/g, '\\.')) });
  await t.throwsAsync(async () => signature.init({ databases: [] }), {
    message: 'signature: options.databases must be a non-empty array of paths',
  });
  await t.throwsAsync(async () => signature.init({}), { message: /options\.databases/ });
  await t.throwsAsync(async () => signature.init({ databases: [d.write('x.txt', '')] }), { message: /unknown database type/ });
  await t.throwsAsync(async () => signature.init({ databases: [d.dir], chunkSize: 0 }), { message: /options\.chunkSize/ });
});

test('the generation is the databases\' bytes: any edit changes it, file order and unrelated files do not', async (t) => {
  const d = withDir(t);
  const a = d.write('a.ndb', `A:0:*:${hex('alpha')}\n`);
  const b = d.write('b.hdb', `${'0'.repeat(32)}:5:B\n`);
  const gen = async (paths: string[]) => (await signature.init({ databases: paths })).generation;
  const base = await gen([a, b]);
  t.regex(base, /^[0-9a-f]{64}$/);
  t.is(await gen([b, a]), base, 'order of databases');
  t.is(await gen([d.dir]), base, 'directory form');
  d.write('notes.txt', 'unrelated');
  t.is(await gen([d.dir]), base, 'an unrelated file in the directory');
  d.write('a.ndb', `# a comment now\nA:0:*:${hex('alpha')}\n`);
  t.not(await gen([a, b]), base, 'a comment (bytes, not meaning: an edit is never missed)');
  d.write('a.ndb', `A:0:*:${hex('alpha')}\n`);
  t.is(await gen([a, b]), base, 'the same bytes again');
  d.write('a.ndb', `A:0:*:${hex('alphA')}\n`);
  t.not(await gen([a, b]), base, 'a changed pattern');
  d.write('a.ndb', `A:0:*:${hex('alpha')}\nC:0:*:${hex('gamma')}\n`);
  t.not(await gen([a, b]), base, 'an added signature');
});
