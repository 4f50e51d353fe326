// Actor API v1 (src/pool/actor.ts) through a real ScanPool: manifest.api checked by name, close() run when a worker
// retires an instance (pool close, reload), ScanFile's stat and xattrs on real files of a private tmpfs, and a
// built-in added by dropping one module into actors/.
import test from 'ava';
import { closeSync, copyFileSync, fstatSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { BUILT_IN_ACTORS_DIR } from '../src/pool/built-ins.js';
import { ScanPool } from '../src/pool/scan-pool.js';
import { native } from '../src/gate/addon.js';
import { isRoot, makeScratch } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const V1 = fileURLToPath(new URL('./fixtures/v1-actor.js', import.meta.url));

async function tmp(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'blessd-actor-api-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

const lines = (path: string): string[] => {
  try {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

test('a manifest without api, or with another api, or naming accesses, is refused by name', async (t) => {
  const d = await tmp(t);
  const mod = (file: string, manifest: string) => {
    const path = join(d, file);
    writeFileSync(path, `export default { manifest: ${manifest}, init() { return { generation: 'g', async scan() { return { answer: 'ok' }; } }; } };\n`);
    return path;
  };
  const pool = new ScanPool({ threads: 1, loadTimeoutMs: 20_000 });
  t.teardown(() => pool.close());
  const none = mod('none.js', `{ name: 'none', version: '1.0.0' }`);
  await t.throwsAsync(pool.describe({ name: 'old', actor: none }), {
    code: 'POOL_LOAD',
    message: `old: ${none}: manifest.api is missing: this blessd speaks actor API 1 (add api: 1 once the module follows it)`,
  });
  const two = mod('two.js', `{ api: 2, name: 'two', version: '1.0.0' }`);
  await t.throwsAsync(pool.describe({ name: 'future', actor: two }), { message: `future: ${two}: manifest.api is 2, but this blessd speaks actor API 1` });
  const acc = mod('acc.js', `{ api: 1, name: 'acc', version: '1.0.0', accesses: ['exec'] }`);
  await t.throwsAsync(pool.describe({ name: 'acc', actor: acc }), { message: /acc: .*acc\.js: manifest\.accesses is not part of actor API 1/ });
  const ok = mod('ok.js', `{ api: 1, name: 'ok', version: '1.0.0' }`);
  t.is((await pool.describe({ name: 'ok', actor: ok })).manifest.api, 1);
});

test('close() runs in every worker at the pool close, and for the old instance at a reload', async (t) => {
  const d = await tmp(t);
  const log = join(d, 'log');
  const pool = new ScanPool({ threads: 2, loadTimeoutMs: 20_000 });
  let closed = false;
  t.teardown(async () => {
    if (!closed) await pool.close();
  });
  await pool.describe({ name: 'v1', actor: V1, options: { log, tag: 'a' } });
  const inits = lines(log).filter((l) => l.startsWith('init a'));
  t.is(inits.length, 2, lines(log).join('\n'));
  t.true(inits.every((l) => l.endsWith('api=1 unix=function')), inits.join('\n'));
  t.deepEqual(lines(log).filter((l) => l.startsWith('close')), []);

  // A reload whose options are the same but whose data moved: the slot's old instance is retired once replaced.
  await pool.describe({ name: 'v1', actor: V1, options: { log, tag: 'a' } });
  const threadsA = [...new Set(inits.map((l) => l.split(' ')[2]))].sort();
  // The retired instance closes after its replacement is in place (asynchronously): wait for both lines.
  await waitFor('the two replaced instances to close', () => lines(log).filter((l) => l.startsWith('close a')).length === 2, 10_000);

  await pool.describe({ name: 'v1b', actor: V1, options: { log, tag: 'b' } });
  await pool.close();
  closed = true;
  const closes = lines(log).filter((l) => l.startsWith('close'));
  // Two instances per worker alive at the close (a: the reloaded one, b): each closed exactly once, in its worker.
  t.is(closes.filter((l) => l.startsWith('close a')).length, 4, closes.join('\n'));
  t.deepEqual(closes.filter((l) => l.startsWith('close b')).map((l) => l.split(' ')[2]).sort(), threadsA);
});

test('a scanner the stack dropped at a reload is retired in every worker then; the ones kept stay until the close', async (t) => {
  const d = await tmp(t);
  const log = join(d, 'log');
  const pool = new ScanPool({ threads: 2, loadTimeoutMs: 20_000 });
  let closed = false;
  t.teardown(async () => {
    if (!closed) await pool.close();
  });
  const kept = { name: 'kept', actor: V1, options: { log, tag: 'k' } };
  const dropped = { name: 'dropped', actor: V1, options: { log, tag: 'd' } };
  await pool.describe(kept);
  await pool.describe(dropped);
  t.is(lines(log).filter((l) => l.startsWith('init d')).length, 2, lines(log).join('\n'));
  pool.retainOnly([kept]);
  await waitFor("the dropped scanner's instances to close in both workers", () => lines(log).filter((l) => l.startsWith('close d')).length === 2, 10_000);
  t.deepEqual(lines(log).filter((l) => l.startsWith('close k')), [], 'the kept one stays');
  await pool.close();
  closed = true;
  t.is(lines(log).filter((l) => l.startsWith('close k')).length, 2);
  t.is(lines(log).filter((l) => l.startsWith('close d')).length, 2, 'each closed once');
});

test('a scan in flight when the pool closes rejects with POOL_CLOSED, even when its actor\'s close() failed it', async (t) => {
  const d = await tmp(t);
  const log = join(d, 'log');
  const path = join(d, 'f');
  writeFileSync(path, 'x');
  const fd = openSync(path, 'r');
  t.teardown(() => closeSync(fd));
  const pool = new ScanPool({ threads: 1, loadTimeoutMs: 20_000 });
  const inFlight = pool.scan({ fd, size: 1, path }, { name: 'v1', actor: V1, options: { log, hold: true } }, { timeoutMs: 20_000 });
  inFlight.catch(() => {});
  await waitFor('the scan to be held in its worker', () => lines(log).some((l) => l.startsWith('holding')), 10_000);
  await pool.close();
  await t.throwsAsync(inFlight, { code: 'POOL_CLOSED' } as never);
  t.true(lines(log).some((l) => l.startsWith('close a')), lines(log).join('\n'));
});

test('ScanFile gives fstat and the xattrs of the scanned descriptor (real tmpfs, user.* xattrs)', async (t) => {
  if (!isRoot()) return t.pass('needs root to mount a scratch tmpfs');
  const scratch = await makeScratch('tmpfs', 8);
  t.teardown(() => scratch.cleanup());
  const path = join(scratch.dir, 'painted.txt');
  writeFileSync(path, 'some content\n');
  native.setXattr(path, 'user.colour', Buffer.from('blue'));
  native.setXattr(path, 'user.shape', Buffer.from('round'));
  const d = await tmp(t);
  const pool = new ScanPool({ threads: 1, loadTimeoutMs: 20_000 });
  t.teardown(() => pool.close());
  const fd = openSync(path, 'r');
  t.teardown(() => closeSync(fd));
  const out = await pool.scan({ fd, size: fstatSync(fd).size, path }, { name: 'v1', actor: V1, options: { log: join(d, 'log') } }, { timeoutMs: 20_000 });
  if (out.kind !== 'answer') return t.fail(JSON.stringify(out));
  const facts = JSON.parse(out.reason!) as Record<string, unknown>;
  const st = statSync(path, { bigint: true });
  t.deepEqual(facts, {
    ino: Number(st.ino),
    dev: Number(st.dev),
    size: 13,
    mode: Number(st.mode),
    nlink: 1,
    mtimeNs: String(st.mtimeNs),
    names: ['user.colour', 'user.shape'],
    colour: 'blue',
    none: null,
  });
});

test('a module dropped into actors/ is a built-in: the config names it without a path and the pool runs it', async (t) => {
  const d = await tmp(t);
  const name = `dropin-${process.pid}`;
  const target = join(fileURLToPath(BUILT_IN_ACTORS_DIR), `${name}.js`);
  // A built-in's relative imports resolve from actors/: the fixture imports only node builtins.
  copyFileSync(V1, target);
  t.teardown(() => rmSync(target, { force: true }));
  const log = join(d, 'log');
  const cfg = `guards:\n  - path: ${d}\nstack:\n  - actor: ${name}\n    options: { log: ${JSON.stringify(log)} }\n  - actor: default\n    options: { answer: allow }\n`;
  const config = parseConfig(cfg, join(d, "config.yaml"));
  t.is(config.stack[0]!.actor, name);
  t.true(config.stack[0]!.builtin);
  const pool = new ScanPool({ threads: 1, loadTimeoutMs: 20_000 });
  t.teardown(() => pool.close());
  const desc = await pool.describe({ name, actor: name, options: { log } });
  t.is(desc.generation, 'v1-a');
  t.is(lines(log).length, 1);
});
