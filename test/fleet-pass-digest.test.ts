// FleetFile (src/fleet/share.ts) taking its digest from a content pass, on a real file and against a store that
// refuses connections (what the file asked of it shows in the counters): a digest from the pass is looked up
// without a read of the file (this process's /proc/self/io rchar), a pass whose stamp or ctime moved gives no lookup
// and no publish, and a pass that ended without a digest leaves the lookup to read one.
import test from 'ava';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { FleetCounters } from '../src/fleet/counters.js';
import { FleetFile, type FleetPolicy } from '../src/fleet/share.js';
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
  await waitFor('the marker publish counted', () => counters.snapshot().unavailable >= 1, 5000);
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
