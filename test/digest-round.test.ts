// DigestRound (src/daemon/digest-round.ts), on a real file: who waits for the round's content pass (and that the
// wait ends on every way the pass ends), and when a digest is reused for a content stamp — only while it still
// names the file: its ctime, or exactly the one our own last tag write left.
import test from 'ava';
import { closeSync, fchmodSync, openSync } from 'node:fs';
import { DigestRound } from '../src/daemon/digest-round.js';
import { readStampAndCtime } from '../src/tags/stamp.js';
import { tempDir } from './helpers/actor-files.js';
import { within } from './helpers/wait.js';

function file(t: { teardown(fn: () => void): void }) {
  const d = tempDir('blessd-digest-round-');
  t.teardown(() => d.cleanup());
  const fd = openSync(d.write('f', 'some content\n'), 'r');
  t.teardown(() => closeSync(fd));
  const { stamp, ctimeNs } = readStampAndCtime(fd);
  return { fd, digest: { sha256: 'ab'.repeat(32), stamp, ctimeNs } };
}

/** Whether `p` is still pending once every queued callback has run. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return !done;
}

test('a served scanner waits for the pass, also when it joined first; the pass itself and a round without one do not', async (t) => {
  const round = new DigestRound(false);
  round.join('yara', { pass: false, served: true });
  const waiting = round.beforeLookup('yara'); // called before the pass has joined (stack order yara, signature)
  round.join('signature', { pass: true, served: false });
  t.true(await pending(waiting), 'yara waits for the pass');
  t.false(await pending(round.beforeLookup('signature')), 'the pass waits for nothing');
  t.true(round.wantsPassDigest('signature'), 'someone uses the digest: yara');
  t.false(round.wantsPassDigest('yara'));
  round.passEnded();
  await within('yara no longer waits once the pass ended', waiting, 1_000);
  const alone = new DigestRound(false);
  alone.join('yara', { pass: false, served: true });
  t.false(await pending(alone.beforeLookup('yara')), 'no pass in the round: no wait');
});

test('the pass is asked for its digest only where it has a use: a content stamp, or a served scanner', (t) => {
  const quiet = new DigestRound(false);
  quiet.join('signature', { pass: true, served: false });
  t.false(quiet.wantsPassDigest('signature'));
  const stamped = new DigestRound(true);
  stamped.join('signature', { pass: true, served: false });
  t.true(stamped.wantsPassDigest('signature'));
});

test('a content stamp reuses the digest while it names the file: its ctime, or exactly the one our last tag write left', (t) => {
  const { fd, digest } = file(t);
  const round = new DigestRound(true);
  t.is(round.forTag(fd), undefined, 'nothing offered yet');
  round.offer(digest);
  t.is(round.forTag(fd), digest.sha256);
  fchmodSync(fd, 0o640); // stands in for our own tag write: ctime moves, the stamp does not
  t.is(round.forTag(fd), undefined, 'ctime moved, and nothing of ours explains it');
  round.wroteTag(fd);
  t.is(round.forTag(fd), digest.sha256, "the ctime our own write left is ours");
  fchmodSync(fd, 0o600); // anyone's change right after ours
  t.is(round.forTag(fd), undefined, 'a change right after our write is not ours (no slack)');
});

test("a pass during which ctime moved counts only if it moved to the ctime our own lease left", (t) => {
  const { fd, digest } = file(t);
  const round = new DigestRound(true);
  fchmodSync(fd, 0o640);
  const moved = { ...digest, ctimeNs: readStampAndCtime(fd).ctimeNs, ctimeMovedFrom: digest.ctimeNs };
  round.offer(moved);
  t.is(round.digest(), undefined, 'not ours: no digest');
  round.wroteTag(fd); // our lease, written while the pass read
  round.offer(moved);
  t.is(round.digest()?.sha256, digest.sha256);
  t.false('ctimeMovedFrom' in round.digest()!, 'kept as a plain digest of the file as it is now');
  t.is(round.forTag(fd), digest.sha256);
});
