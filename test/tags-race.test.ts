// Two real processes race for the same files: the kernel's XATTR_CREATE lets exactly one take each lease.
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { native } from '../src/gate/addon.js';
import type { ResultTag } from '../src/tags/codec.js';
import { KINDS, store, tagScratch, testKey } from './helpers/tag-files.js';
import { runChild } from './helpers/child.js';
import { clockPast } from './helpers/wait.js';

const RACER = fileURLToPath(new URL('./helpers/tag-racer.js', import.meta.url));
const FILES = 300;

async function race(keyHex: string, files: string[], finish: boolean) {
  const sync = mkdtempSync(join(tmpdir(), 'blessd-race-'));
  const env = { ...process.env, RACER_SYNC_DIR: sync };
  const runs = await Promise.all(
    ['alpha:101', 'beta:202'].map((holder) => runChild(process.execPath, [RACER, keyHex, holder, finish ? '1' : '0', ...files], { timeoutMs: 60_000, env })),
  ).finally(() => rmSync(sync, { recursive: true, force: true }));
  return runs.map((r) => {
    if (r.code !== 0) throw new Error(`racer failed (${r.code} ${r.signal}): ${r.stderr}`);
    return JSON.parse(r.stdout) as { leased: number[]; written: number[]; began: number; ended: number };
  });
}

for (const kind of KINDS) {
  test(`${kind}: two processes racing over ${FILES} fresh files: exactly one lease per file`, async (t) => {
    const s = await tagScratch(t, kind);
    const key = testKey();
    const files = Array.from({ length: FILES }, (_, i) => {
      const path = join(s.scratch.dir, `f${i}`);
      writeFileSync(path, `file ${i}\n`);
      return path;
    });
    const [a, b] = await race(key.toString('hex'), files, false);
    const both = a!.leased.filter((i) => b!.leased.includes(i));
    t.deepEqual(both, [], 'no file leased twice');
    t.is(a!.leased.length + b!.leased.length, FILES, 'every file leased once');
    t.log(`alpha ${a!.leased.length} in ${(a!.began % 1e5).toFixed(2)}..${(a!.ended % 1e5).toFixed(2)}, beta ${b!.leased.length} in ${(b!.began % 1e5).toFixed(2)}..${(b!.ended % 1e5).toFixed(2)}`);
    const holder = native.getXattr(files[0]!, 'trusted.scanned-by.clamav')!.toString();
    t.regex(holder, /holder=(alpha%3A101|beta%3A202)/);
  });

  test(`${kind}: two processes taking over ${FILES} expired leases: exactly one lease and one result per file`, async (t) => {
    const s = await tagScratch(t, kind);
    const key = testKey();
    const old = store(key, { host: 'dead', pid: 1, leaseMs: 1 });
    let expires = 0;
    const files = Array.from({ length: FILES }, (_, i) => {
      const path = join(s.scratch.dir, `f${i}`);
      writeFileSync(path, `file ${i}\n`);
      const lease = old.begin(s.open(path), 'clamav');
      t.is(lease.status, 'leased');
      if (lease.status === 'leased') expires = Math.max(expires, lease.leaseUntil);
      return path;
    });
    await clockPast(expires); // every old lease has expired
    const [a, b] = await race(key.toString('hex'), files, true);
    for (let i = 0; i < FILES; i++) {
      const leases = Number(a!.leased.includes(i)) + Number(b!.leased.includes(i));
      const results = Number(a!.written.includes(i)) + Number(b!.written.includes(i));
      t.is(leases, 1, `file ${i}: taken over once`);
      t.is(results, 1, `file ${i}: one result`);
    }
    t.log(`alpha ${a!.leased.length} in ${(a!.began % 1e5).toFixed(2)}..${(a!.ended % 1e5).toFixed(2)}, beta ${b!.leased.length} in ${(b!.began % 1e5).toFixed(2)}..${(b!.ended % 1e5).toFixed(2)}`);
    t.deepEqual(native.listXattr(files[0]!), ['trusted.scanned-by.clamav'], 'no takeover lock left behind');
    const tag = (await store(key).read(s.open(files[7]!), { clamav: 'g#0' })).tags[0]!;
    t.is(tag.judgement, 'valid');
    t.regex((tag.value as ResultTag).reason!, /^(alpha:101|beta:202)$/);
  });
}
