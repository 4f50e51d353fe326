// FleetFile (src/fleet/share.ts) taking its digest from a content pass, on a real file and against a store that
// refuses connections (what the file asked of it shows in the counters): a digest from the pass is looked up
// without a read of the file (this process's /proc/self/io rchar), a pass whose stamp or ctime moved gives no lookup
// and no publish, and a pass that ended without a digest leaves the lookup to read one. On the scan path
// (scan-shared.ts), a digest given by another task is used only while it still names the file.
import test from 'ava';
import { createHash } from 'node:crypto';
import { closeSync, fchmodSync, openSync, readFileSync, writeSync } from 'node:fs';
import { FleetCounters } from '../src/fleet/counters.js';
import { scanShared } from '../src/fleet/scan-shared.js';
import { FleetFile, type FleetPolicy } from '../src/fleet/share.js';
import type { ScanResult } from '../src/pool/tasks.js';
import { storeClient } from '../src/fleet/store-client.js';
import { readStampAndCtime } from '../src/tags/stamp.js';
import { tempDir } from './helpers/actor-files.js';
import { waitFor } from './helpers/wait.js';

const SIZE = 4 << 20;
const URL = 'redis://127.0.0.1:1'; // nothing listens: each lookup or publish is one 'unavailable', at once
const TIMEOUT_MS = 300;

function rchar(): number {
  return Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))![1]);
}

function setUp(t: { teardown(fn: () => void): void }) {
  const d = tempDir('blessd-pass-digest-');
  t.teardown(() => d.cleanup());
  const content = Buffer.alloc(SIZE, 0x61);
  const path = d.write('f.bin', content);
  const fd = openSync(path, 'r+');
  t.teardown(() => closeSync(fd));
  const counters = new FleetCounters();
  const policy: FleetPolicy = { url: URL, key: new Uint8Array(32), timeoutMs: TIMEOUT_MS, ttlS: 60, origin: 'test', counts: counters.shared };
  t.teardown(() => storeClient(URL, TIMEOUT_MS).close());
  const file = new FleetFile(policy, fd, SIZE, new Map([['signature', 'g1'], ['yara', 'g2']]), 'signature');
  return { fd, file, counters, policy, sha256: createHash('sha256').update(content).digest() };
}

test.serial('the pass digest is the key: the lookup (of the other scanner only) reads nothing of the file', async (t) => {
  const { fd, file, counters, sha256 } = setUp(t);
  t.is(await file.shared('signature'), undefined, 'the source is never looked up');
  const looked = file.shared('yara');
  const stamp = readStampAndCtime(fd);
  const before = rchar();
  file.passDigest(sha256, SIZE, stamp, readStampAndCtime(fd));
  t.is(await looked, undefined);
  t.true(rchar() - before < SIZE / 2, `${rchar() - before} bytes read for a ${SIZE}-byte file`);
  t.is(counters.snapshot().unavailable, 1, 'one key asked for (yara), not the source');
});

test.serial('a pass whose stamp and ctime moved (the file was written under it): no lookup, no publish', async (t) => {
  const { fd, file, counters, policy, sha256 } = setUp(t);
  const looked = file.shared('yara');
  const stamp = readStampAndCtime(fd);
  writeSync(fd, Buffer.from('a'), 0, 1, 0); // the same byte at the same place: size and content kept, ctime moves
  file.passDigest(sha256, SIZE, stamp, readStampAndCtime(fd));
  t.is(await looked, undefined);
  file.publish('signature', { answer: 'ok' });
  file.publish('yara', { answer: 'ok' });
  // A marker: a file whose pass held publishes after them, through the same client; once its attempt is counted,
  // one they made would have been too (the refused connection fails them in order).
  const marker = new FleetFile(policy, fd, SIZE, new Map([['signature', 'g1']]), 'signature');
  const now = readStampAndCtime(fd);
  marker.passDigest(sha256, SIZE, now, now);
  marker.publish('signature', { answer: 'ok' });
  // A fresh client's first publish waits up to 5 s for a connection (store-client.ts PUBLISH_FIRST_WAIT_MS).
  await waitFor('the marker publish counted', () => counters.snapshot().unavailable >= 1, 20_000);
  t.deepEqual(counters.snapshot(), { hits: 0, misses: 0, published: 0, refused: 0, unavailable: 1, lookupUs: 0 }, 'only the marker tried the store');
});

test.serial('a pass over fewer bytes than the stamp says (the file grew before it): no lookup', async (t) => {
  const { fd, file, counters, sha256 } = setUp(t);
  const looked = file.shared('yara');
  const stamp = readStampAndCtime(fd);
  file.passDigest(sha256, SIZE - 1, stamp, readStampAndCtime(fd));
  t.is(await looked, undefined);
  t.is(counters.snapshot().unavailable, 0);
});

test.serial('a pass that ended without a digest: the lookup reads one itself', async (t) => {
  const { file, counters } = setUp(t);
  const looked = file.shared('yara');
  const before = rchar();
  file.passEnded();
  t.is(await looked, undefined);
  t.true(rchar() - before >= SIZE, `${rchar() - before} bytes read for a ${SIZE}-byte file`);
  t.is(counters.snapshot().unavailable, 1);
});

// The scan path (src/fleet/scan-shared.ts): a scan task given another task's pass digest (src/daemon/digest-round.ts).

function scanTask(t: { teardown(fn: () => void): void }) {
  const { fd, counters, sha256 } = setUp(t);
  const policy: FleetPolicy = { url: URL, key: new Uint8Array(32), timeoutMs: TIMEOUT_MS, ttlS: 60, origin: 'test', counts: counters.shared };
  const { stamp, ctimeNs } = readStampAndCtime(fd);
  const given = { sha256: sha256.toString('hex'), stamp, ctimeNs };
  let scans = 0;
  const scan = async (): Promise<ScanResult> => {
    scans++;
    return { answer: 'ok', generation: 'g2', ms: 1 };
  };
  const run = (fleet: { digest?: typeof given; ownCtimeNs?: bigint }) => scanShared('yara', { fd, size: SIZE }, { policy, generation: 'g2', ...fleet }, 'g2', scan);
  /** The lookups the store was asked for (it refuses each: one 'unavailable'; a publish to a store known down is
   * not tried), once they are over. */
  const asked = async () => {
    await new Promise((r) => setTimeout(r, 2 * TIMEOUT_MS));
    return counters.snapshot().unavailable;
  };
  return { fd, given, run, asked, scans: () => scans };
}

test.serial('scan path: a given pass digest that still names the file is the key (no read), and comes back for the content stamp', async (t) => {
  const { given, run, asked, scans } = scanTask(t);
  const before = rchar();
  const r = await run({ digest: given });
  t.true(rchar() - before < SIZE / 2, `${rchar() - before} bytes read for a ${SIZE}-byte file`);
  t.is(scans(), 1);
  t.deepEqual((r as ScanResult).digest, given);
  t.is(await asked(), 1, 'one lookup, under the given digest');
});

test.serial('scan path: a given digest the file may no longer match (ctime moved, and it is not the ctime our own last tag write left): no lookup, no digest back', async (t) => {
  const { fd, given, run, asked, scans } = scanTask(t);
  fchmodSync(fd, 0o640); // stands in for our own tag write: it moves ctime, not the stamp
  const ours = readStampAndCtime(fd).ctimeNs;
  // Then ctime alone moves again (as after a write whose mtime was put back), right after ours: not ours.
  fchmodSync(fd, 0o600);
  const r = await run({ digest: given, ownCtimeNs: ours });
  t.is(scans(), 1, 'scanned');
  t.is((r as ScanResult).digest, undefined, 'nothing for the content stamp: it reads its own');
  t.is(await asked(), 0, 'the store was asked nothing');
});

test.serial('scan path: a ctime that is the one our own last tag write left (a lease, another result tag): the given digest is used', async (t) => {
  const { fd, given, run, asked } = scanTask(t);
  fchmodSync(fd, 0o640); // stands in for our own tag write: it moves ctime, not the stamp
  const r = await run({ digest: given, ownCtimeNs: readStampAndCtime(fd).ctimeNs });
  t.deepEqual((r as ScanResult).digest, given);
  t.is(await asked(), 1);
});

test.serial('scan path: no digest given: the lookup reads one, and it comes back with the result', async (t) => {
  const { given, run, asked } = scanTask(t);
  const before = rchar();
  const r = await run({});
  t.true(rchar() - before >= SIZE, `${rchar() - before} bytes read for a ${SIZE}-byte file`);
  t.is((r as ScanResult).digest?.sha256, given.sha256);
  t.is(await asked(), 1);
});
