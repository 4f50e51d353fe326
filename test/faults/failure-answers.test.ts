// A failure is never a verdict: a timeout, a crash or an fd shortage answers the access it happened to, and nothing
// is stored beyond it — no tag on disk, no entry in the native verdict table. The scan timeout counts from the
// scan's start, so a file queued behind hung scans is judged on its own content.
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../../src/gate/addon.js';
import { runChild } from '../helpers/child.js';
import { FIXTURES, withDaemon } from '../helpers/daemon-harness.js';
import { isRoot } from '../helpers/scratch.js';
import { waitFor } from '../helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const denied = /Operation not permitted/;
// A deny that rests on a failure (timeout, crash, no scanner) is the retryable errno: nothing judged the content.
const retried = /Resource temporarily unavailable/;
const TAG = 'trusted.scanned-by.moody';
const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []);

/** A private dir for the actor's counter and break switch, removed at teardown. */
function ownDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-fault-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The moody test actor (hangs on HANG files, throws while `broken` exists) in front of an allowing default. */
function moodyStack(dir: string): string {
  return `  - actor: ${join(FIXTURES, 'moody-actor.js')}
    name: moody
    options: { counter: ${join(dir, 'scans.log')}, breakFile: ${join(dir, 'broken')}, initMs: 800 }
  - actor: default
    options: { answer: allow }`;
}

t0('a file queued behind two hung scans is scanned in its turn, not denied and tagged; the hung files are not remembered', async (t) => {
  const own = ownDir(t);
  const counter = join(own, 'scans.log');
  const h = await withDaemon(t, 'ext4', {
    scanTimeout: '2s',
    stack: moodyStack(own),
    prepare: async (d) => {
      await writeFile(join(d, 'hang1'), 'HANG one\n');
      await writeFile(join(d, 'hang2'), 'HANG two\n');
      await writeFile(join(d, 'clean'), 'clean\n');
    },
  });
  // Both pool threads spin on a hung file; then a clean file queues behind them.
  const hung = ['hang1', 'hang2'].map((f) => runChild('cat', [join(h.dir, f)], { timeoutMs: 30_000 }));
  await waitFor('two hung scans to begin', () => lines(counter).length === 2, 15_000);
  const clean = await runChild('cat', [join(h.dir, 'clean')], { timeoutMs: 30_000 });
  t.is(clean.stdout, 'clean\n', `queued clean file: ${clean.stderr}`);
  t.regex(native.getXattr(join(h.dir, 'clean'), TAG)?.toString() ?? '(none)', /^v1 ok /, 'its own scan answered, and that is stored');
  for (const r of await Promise.all(hung)) t.regex(r.stderr, retried, 'a hung scan answers its access with onTimeout (retryable)');
  // The timeout answered those accesses only: no tag (the lease was given back), no native verdict.
  for (const f of ['hang1', 'hang2']) t.is(native.getXattr(join(h.dir, f), TAG), null, `${f} carries no tag`);
  const before = lines(counter).length;
  const again = await runChild('cat', [join(h.dir, 'hang1')], { timeoutMs: 30_000 });
  t.regex(again.stderr, retried, 'the hung scan again: onTimeout again');
  t.true(lines(counter).length > before, 'the next access scanned again instead of finding a stored deny');
});

t0('a scanner that threw denies that access only: once it works again, the file reads', async (t) => {
  const own = ownDir(t);
  const counter = join(own, 'scans.log');
  await writeFile(join(own, 'broken'), '');
  const h = await withDaemon(t, 'ext4', { stack: moodyStack(own), prepare: (d) => writeFile(join(d, 'doc.txt'), 'doc\n') });
  const file = join(h.dir, 'doc.txt');
  const first = await runChild('cat', [file]);
  t.regex(first.stderr, retried, 'onError: deny answers the crash (retryable)');
  t.is(native.getXattr(file, TAG), null, 'a crash is not written as a tag');
  t.is(lines(counter).length, 1);
  await rm(join(own, 'broken')); // the bug is fixed (same actor, same generation)
  const second = await runChild('cat', [file]);
  t.is(second.stdout, 'doc\n', second.stderr);
  t.regex(native.getXattr(file, TAG)?.toString() ?? '(none)', /^v1 ok /);
  t.is(lines(counter).length, 2, 'judged again by a fresh scan');
});

t0('a file over maxSize is refused by the size policy without a tag; a reload that raises the limit lets it be read', async (t) => {
  const own = ownDir(t);
  const entry = (maxSize: string) => `  - actor: ${join(FIXTURES, 'moody-actor.js')}
    name: moody
    maxSize: ${maxSize}
    options: { counter: ${join(own, 'scans.log')} }
  - actor: default
    options: { answer: allow }`;
  const h = await withDaemon(t, 'ext4', { stack: entry('16B'), prepare: (d) => writeFile(join(d, 'big.txt'), 'more than sixteen bytes\n') });
  const file = join(h.dir, 'big.txt');
  t.regex((await runChild('cat', [file])).stderr, denied, 'onTooLarge: deny');
  t.is(native.getXattr(file, TAG), null, 'a size answer is not written as a tag');
  t.regex((await runChild('cat', [file])).stderr, denied, 'still too large: refused again');
  t.is(lines(join(own, 'scans.log')).length, 0, 'never scanned');
  const { parseConfig } = await import('../../src/config/index.js');
  const yaml = `stateDir: ${h.state}\nguards: [{ path: ${h.dir}, kind: filesystem }]\nsocket: { path: ${join(h.scratch.base, 's')} }\nstack:\n${entry('1MiB')}`;
  await h.daemon.reload(parseConfig(yaml, join(h.scratch.base, 'c.yaml')));
  const r = await runChild('cat', [file]);
  t.is(r.stdout, 'more than sixteen bytes\n', r.stderr);
  t.regex(native.getXattr(file, TAG)?.toString() ?? '(none)', /^v1 ok /);
});
