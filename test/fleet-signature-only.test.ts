// A stack whose only content scanner is the built-in signature pass makes no store traffic (src/fleet/scope.ts):
// the pass reads a file as fast as the digest a lookup needs, so a lookup would only add a read and a round trip.
// Measured on real processes: the test's own redis-server says what it was asked (INFO commandstats, and who is
// connected), and the daemon's /proc/<pid>/io rchar says how many times it read a 16 MiB cold file (once: the pass).
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { EICAR } from './helpers/actor-files.js';
import { SIGNATURE_STACK, withFleet, type FleetHost } from './helpers/fleet-hosts.js';
import { isRoot } from './helpers/scratch.js';

const rootTest = isRoot() ? test.serial : test.skip;
const MiB = 1 << 20;
const SIZE = 16 * MiB;

async function rchar(h: FleetHost): Promise<number> {
  const pid = h.daemon().child.pid!;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
  if (!cmdline.includes('blessd.js')) throw new Error(`pid ${pid} is not blessd: ${cmdline}`);
  return Number(/^rchar: (\d+)$/m.exec(await readFile(`/proc/${pid}/io`, 'utf8'))![1]);
}

/** Commands the store served, by name (INFO commandstats), without the test's own INFO and CONFIG RESETSTAT. */
function commands(info: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) if (m[1] !== 'info' && m[1] !== 'config|resetstat') out[m[1]!] = Number(m[2]);
  return out;
}

rootTest('a signature-only stack: no store lookup or publish, no connection, each file read once, logged once at start', async (t) => {
  const f = await withFleet(t, ['a'], { stack: SIGNATURE_STACK, sizeMiB: 128 });
  const a = f.hosts.a!;
  const big = Buffer.allocUnsafe(SIZE);
  for (let i = 0; i * 32 < SIZE; i++) createHash('sha256').update(`block ${i}`).digest().copy(big, i * 32);
  await writeFile(join(a.dir, 'warm.txt'), 'loads the actor before the measured file\n');
  await writeFile(join(a.dir, 'big.bin'), big);
  await writeFile(join(a.dir, 'eicar.com'), EICAR);
  await f.cli(['CONFIG', 'RESETSTAT']);
  const cat = (p: string) => runChild('cat', [p], { timeoutMs: 30_000 });

  t.is((await cat(join(a.dir, 'warm.txt'))).code, 0);
  const before = await rchar(a);
  t.is((await cat(join(a.dir, 'big.bin'))).code, 0);
  const reads = ((await rchar(a)) - before) / SIZE;
  t.log(`the daemon read ${reads.toFixed(2)} × the size of a ${SIZE / MiB} MiB cold file`);
  t.true(reads >= 0.99 && reads < 1.5, `read ${reads.toFixed(2)} times (want 1: the signature pass, no digest read)`);
  t.regex((await cat(join(a.dir, 'eicar.com'))).stderr, /Operation not permitted/, 'the signature scanner still gates');

  const st = await a.stats();
  t.is(st.scans['signature'], 3);
  t.deepEqual(commands(await f.cli(['INFO', 'commandstats'])), {}, 'the store was asked nothing since the reset');
  // Only redis-cli itself: no pool worker opened a connection (a connection would say CLIENT SETNAME blessd).
  t.notRegex(await f.cli(['CLIENT', 'LIST']), /name=blessd/);
  t.deepEqual({ ...st.fleet, lookupUs: 0 }, { hits: 0, misses: 0, published: 0, refused: 0, unavailable: 0, lookupUs: 0 });
  const said = a.daemon().log().split('\n').filter((l) => l.includes('no store traffic for this stack'));
  t.is(said.length, 1, 'said once at start');
  t.regex(said[0]!, /"signature":"a cheap in-process signature pass/);
});
