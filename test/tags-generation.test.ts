// Generation bumps: a counter per scanner in <stateDir>/generations.json; a bump makes older tags stale-generation.
import test from 'ava';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bumpGeneration, currentGenerations, readBumps, splitTagGeneration, tagGeneration } from '../src/tags/generation.js';
import { KINDS, store, tagScratch, testKey } from './helpers/tag-files.js';

function tempDir(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('bumps count per scanner, in an atomically replaced file', async (t) => {
  const dir = join(tempDir(t), 'state');
  t.deepEqual(await readBumps(dir), {});
  t.is(await bumpGeneration(dir, 'clamav'), 1);
  t.is(await bumpGeneration(dir, 'clamav'), 2);
  t.is(await bumpGeneration(dir, 'yara'), 1);
  t.deepEqual(await readBumps(dir), { clamav: 2, yara: 1 });
  t.deepEqual(JSON.parse(readFileSync(join(dir, 'generations.json'), 'utf8')), { version: 1, bumps: { clamav: 2, yara: 1 } });
  t.deepEqual(readdirSync(dir), ['generations.json'], 'no temp file left');
  t.deepEqual(await currentGenerations(dir, { clamav: 'db-5', other: 'x' }), { clamav: 'db-5#2', other: 'x#0' });
});

test('tag generations split at the last #', (t) => {
  t.is(tagGeneration('daily#27000', 3), 'daily#27000#3');
  t.deepEqual(splitTagGeneration('daily#27000#3'), { actor: 'daily#27000', bump: 3 });
  t.deepEqual(splitTagGeneration('plain'), { actor: 'plain', bump: null });
  t.deepEqual(splitTagGeneration('x#y'), { actor: 'x', bump: null });
});

test('a bad state file is an error naming the file and the key', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'generations.json');
  const cases: Array<[string, RegExp]> = [
    ['{ nope', /not JSON/],
    ['[]', /expected an object/],
    ['{"version":2,"bumps":{}}', /version: expected 1/],
    ['{"version":1,"bumps":{"clamav":-1}}', /bumps\.clamav: expected a non-negative integer/],
    ['{"version":1,"bumps":{"clamav":1.5}}', /bumps\.clamav/],
    ['{"version":1,"bumps":{"../x":1}}', /bumps\.\.\.\/x: not a scanner name/],
  ];
  for (const [text, message] of cases) {
    writeFileSync(file, text);
    const err = await t.throwsAsync(readBumps(dir), { message });
    t.is((err as { code?: string }).code, 'TAG_STATE_FILE');
    t.true(err!.message.includes(file));
    await t.throwsAsync(bumpGeneration(dir, 'clamav'), { message }, 'a bump does not overwrite a file it cannot read');
  }
  await t.throwsAsync(bumpGeneration(dir, 'Bad Name'), { message: /not a scanner name/ });
});

for (const kind of KINDS) {
  test(`${kind}: a bump makes every older tag of that scanner stale-generation, and no other`, async (t) => {
    const s = await tagScratch(t, kind);
    const stateDir = tempDir(t);
    const actor = { clamav: 'db-1', yara: 'rules-1' };
    const tags = store(testKey());
    const files = [s.file('a'), s.file('b')];
    let gens = await currentGenerations(stateDir, actor);
    for (const { fd } of files) {
      for (const scanner of ['clamav', 'yara']) {
        const lease = tags.begin(fd, scanner);
        if (lease.status !== 'leased') return t.fail();
        await tags.finish(fd, scanner, lease.token, { answer: 'ok' }, gens[scanner]!);
      }
    }
    for (const { fd } of files) t.deepEqual((await tags.read(fd, gens)).tags.map((x) => x.judgement), ['valid', 'valid']);
    await bumpGeneration(stateDir, 'clamav');
    gens = await currentGenerations(stateDir, actor);
    for (const { fd } of files) {
      const by = Object.fromEntries((await tags.read(fd, gens)).tags.map((x) => [x.scanner, x.judgement]));
      t.deepEqual(by, { clamav: 'stale-generation', yara: 'valid' });
    }
  });
}
