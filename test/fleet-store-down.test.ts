// The store is an accelerator, never a dependency: redis killed mid-run leaves both hosts gating with local
// scans, each access bounded, the loss logged once; a store that is not reachable at all bounds the first access
// by fleet.timeout (not by TCP's own timeouts, nor by the gate's deadline).
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from './helpers/actor-files.js';
import { runChild } from './helpers/child.js';
import { readFreshLocally, withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const rootTest = isRoot() ? test.serial : test.skip;

const read = (p: string) => runChild('cat', [p], { timeoutMs: 15_000 });
const scans = async (h: FleetHost) => (await h.stats()).scans['yara'] ?? 0;
const fleet = async (h: FleetHost, k: string) => (await h.stats()).fleet?.[k] ?? 0;
const lines = (h: FleetHost, re: RegExp) => h.daemon().log().split('\n').filter((l) => re.test(l)).length;

rootTest('redis killed mid-run: both hosts keep gating with local scans, nothing hangs, the loss is logged once', async (t) => {
  const f = await withFleet(t, ['a', 'b']);
  const { a, b } = f.hosts as Record<string, FleetHost>;
  await writeFile(join(a!.dir, 'first'), 'judged while the store is up\n');
  t.is((await read(join(a!.dir, 'first'))).code, 0);
  await waitFor('A published', async () => (await fleet(a!, 'published')) === 1, 10_000, 50);

  const redis = f.redis();
  redis.kill('SIGKILL');
  await within('redis-server gone', new Promise((r) => redis.once('exit', r)), 5_000);

  for (const h of [a!, b!]) await readFreshLocally(t, h, 4, (i) => `${i} on ${h.name}`);
  for (const h of [a!, b!]) {
    t.true((await fleet(h, 'unavailable')) >= 8, `${h.name} counted the store unavailable`);
    await waitFor(`${h.name} logged the store's loss`, () => lines(h, /fleet store unavailable/) > 0, 5_000);
    t.is(lines(h, /fleet store unavailable/), 1, `${h.name} logged it once, not once per file`);
  }

  // Back: lookups answer again (ioredis reconnects in the background), and the recovery is logged.
  const missed = await fleet(a!, 'misses');
  await f.startRedis();
  let n = 0;
  await waitFor('A asks the store again', async () => {
    const p = join(a!.dir, `after-${n++}`);
    await writeFile(p, `after the restart ${n}\n`);
    await read(p);
    return (await fleet(a!, 'misses')) > missed;
  }, 15_000, 100);
  await waitFor('the recovery logged', () => lines(a!, /fleet store answering again/) === 1, 5_000);

  for (const h of [a!, b!]) {
    await h.daemon().kill('SIGTERM');
    t.is((await h.daemon().exited).code, 0, `${h.name} stopped cleanly`);
  }
});

rootTest('an unreachable store: the first access waits at most fleet.timeout for it, then the file is scanned locally', async (t) => {
  const f = await withFleet(t, ['a'], { noStart: true, timeout: '400ms' });
  const a = f.hosts.a!;
  await writeFile(join(a.dir, 'present-at-start'), 'judged in the worker batch path\n');
  await writeFile(join(a.dir, 'evil-at-start'), EICAR);
  // Packets to the store are dropped (its port is down): a connect gets no answer at all, not a refusal.
  await f.net.setLink('redis', false);
  await a.start();
  const first = await read(join(a.dir, 'present-at-start'));
  t.is(first.code, 0, first.stderr);
  t.true(first.ms < 400 + 1_500, `first access took ${Math.round(first.ms)} ms`);
  const evil = await read(join(a.dir, 'evil-at-start'));
  t.regex(evil.stderr, /Operation not permitted/);
  t.true(evil.ms < 1_500, `second access took ${Math.round(evil.ms)} ms (the store is known to be away)`);
  await writeFile(join(a.dir, 'written-later'), 'judged on the scan path\n');
  const later = await read(join(a.dir, 'written-later'));
  t.is(later.code, 0);
  t.true(later.ms < 1_500, `a written file took ${Math.round(later.ms)} ms`);
  t.is(await scans(a), 3);
  t.true((await fleet(a, 'unavailable')) >= 2);
  await waitFor('the store logged unavailable', () => lines(a, /fleet store unavailable/) === 1, 5_000);
});

rootTest('a stalled store (redis stopped, its connection open): each lookup gives up at fleet.timeout, nothing hangs', async (t) => {
  const f = await withFleet(t, ['a'], { timeout: '300ms' });
  const a = f.hosts.a!;
  await writeFile(join(a.dir, 'warm'), 'makes the connection\n');
  t.is((await read(join(a.dir, 'warm'))).code, 0);
  await waitFor('A published', async () => (await fleet(a, 'published')) === 1, 10_000, 50);
  // SIGSTOP: the TCP connection stays up and takes the commands, nothing answers them.
  f.redis().kill('SIGSTOP');
  t.teardown(() => void f.redis().kill('SIGCONT'));
  for (let i = 0; i < 3; i++) {
    const p = join(a.dir, `stalled-${i}`);
    await writeFile(p, i === 1 ? Buffer.concat([EICAR, Buffer.from('\nstalled\n')]) : `stalled ${i}\n`);
    const r = await read(p);
    if (i === 1) t.regex(r.stderr, /Operation not permitted/);
    else t.is(r.code, 0, r.stderr);
    t.true(r.ms < 300 + 1_500, `access ${i} took ${Math.round(r.ms)} ms with the store stalled`);
  }
  t.is(await scans(a), 4);
  t.true((await fleet(a, 'unavailable')) >= 3);
  await waitFor('the stall logged', () => lines(a, /fleet store unavailable/) === 1, 5_000);
});
