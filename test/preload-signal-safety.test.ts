// The preload library inside a signal handler: a host that counts every allocation in its process (it defines
// malloc itself, test/fixtures/preload-alloc-host.c) reads a file from a SIGUSR1 handler, where only
// async-signal-safe code may run. The library's gate decides there — key creation, tag read, scan, tag write, a
// denial's message — without one allocation, and leaves errno as it was on a pass. A handler that reads the very
// descriptor its own thread is checking gets EAGAIN at once instead of a deadlock. Real programs as an unprivileged
// user the test creates, on a private ext4 mount.
import test from 'ava';
import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { native } from '../src/gate/addon.js';
import { isRoot } from './helpers/scratch.js';
import { EICAR, EICAR_SCANNER, makePreloadLab } from './helpers/preload-lab.js';

const run = promisify(execFile);
const root = isRoot() ? test.serial : test.skip;
const HOST_SRC = join(process.cwd(), 'test/fixtures/preload-alloc-host.c');

const tags = (path: string) => {
  const fd = openSync(path, 'r');
  try {
    return native.listXattr(fd);
  } finally {
    closeSync(fd);
  }
};

root('a gated read inside a signal handler allocates nothing (key, tag read, scan, tag write, denial) and keeps errno', async (t) => {
  const lab = await makePreloadLab(t, 'ext4');
  // The scanner signals its parent (the host, waiting in its gated read) when asked to, to test the nested read.
  lab.scanner('sig', `case "$BLESSD_PATH" in *nested*) kill -USR1 $PPID;; esac\n${EICAR_SCANNER}`);
  lab.config();
  const host = join(lab.dir, '..', 'alloc-host'); // outside `paths`: the host program itself is not gated
  await run('gcc', ['-O2', '-Wall', '-rdynamic', '-o', host, HOST_SRC]);
  const clean = lab.file('clean.txt', 'clean content\n');
  const bad = lab.file('eicar.com', EICAR);
  const nested = lab.file('nested.txt', 'nested content\n');
  t.false(existsSync(join(lab.stateDir, 'blessd', 'key')), 'the first read creates the key, inside the handler');

  const first = await lab.run(host, [clean]);
  t.is(first.stdout, 'read=14 errno=4242 allocs=0\n', first.stderr);
  t.is(lab.scans().length, 1, 'the handler read was the scanned first access');
  t.deepEqual(tags(clean), ['user.scanned-by.sig'], 'and its result was tagged');
  t.true(existsSync(join(lab.stateDir, 'blessd', 'key')));

  const second = await lab.run(host, [clean]);
  t.is(second.stdout, 'read=14 errno=4242 allocs=0\n', 'the tag path (getxattr + HMAC) allocates nothing either');
  t.is(lab.scans().length, 1, 'the tag settled it');

  const denied = await lab.run(host, [bad]);
  t.is(denied.stdout, 'read=-1 errno=1 allocs=0\n', denied.stderr);
  t.regex(denied.stderr, /eicar\.com: denied \(sig: Eicar-Test-Signature\)/);

  // main's read is scanning; the scanner sends SIGUSR1; the handler reads the same fd on the same thread.
  const inner = await lab.run(host, [nested, 'nested'], { timeoutMs: 15_000 });
  t.is(inner.stdout, 'read=15 errno=4242 allocs=0 inner=-1 innererrno=11\n', inner.stderr);
  t.is(lab.scans().filter((l) => l.includes('nested.txt')).length, 1);
});
