// The MAC key file: created once with mode 0600 (directory 0700), 32 random bytes, refused when others can read it.
import test from 'ava';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTagKey } from '../src/tags/key.js';

function tempDir(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('first use creates the key with mode 0600 in a 0700 directory; later uses read the same key', async (t) => {
  const path = join(tempDir(t), 'state', 'tag.key');
  const key = await loadTagKey(path);
  t.is(key.length, 32);
  t.is(statSync(path).mode & 0o777, 0o600);
  t.is(statSync(join(path, '..')).mode & 0o777, 0o700);
  t.deepEqual(await loadTagKey(path), key);
  t.deepEqual(readFileSync(path), key);
});

test('many processes-worth of concurrent first uses agree on one key', async (t) => {
  const path = join(tempDir(t), 'tag.key');
  const keys = await Promise.all(Array.from({ length: 16 }, () => loadTagKey(path)));
  for (const k of keys) t.deepEqual(k, keys[0]);
});

test('bad key files are refused with the path in the message', async (t) => {
  const dir = tempDir(t);
  const short = join(dir, 'short.key');
  writeFileSync(short, 'abc', { mode: 0o600 });
  await t.throwsAsync(loadTagKey(short), { code: 'TAG_KEY_FILE', message: new RegExp(`${short}: 3 bytes, expected 32`) } as never);
  const open = join(dir, 'open.key');
  writeFileSync(open, Buffer.alloc(32, 1));
  chmodSync(open, 0o644);
  await t.throwsAsync(loadTagKey(open), { message: /mode 644 lets others read it/ });
  const missing = join(dir, 'missing.key');
  await t.throwsAsync(loadTagKey(missing, { create: false }), { message: new RegExp(`${missing} does not exist`) });
  await t.throwsAsync(loadTagKey(dir), { message: /not a regular file/ });
});
