// Leases of a dead daemon: a lease names its holder (host, boot id, pid, process start time). A lease of this host
// whose holder is gone is void at once; a lease of another host is waited on for a bounded time, and that wait
// never ends in a deny by itself.
import test from 'ava';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../../src/gate/addon.js';
import { loadTagKey } from '../../src/tags/key.js';
import { TagStore } from '../../src/tags/store.js';
import { runChild, startChild } from '../helpers/child.js';
import { FIXTURES, withDaemon } from '../helpers/daemon-harness.js';
import { startDaemonProcess } from '../helpers/daemon-process.js';
import { isRoot, makeScratch } from '../helpers/scratch.js';
import { waitFor } from '../helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const TAG = 'trusted.scanned-by.moody';
const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []);

function ownDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-fault-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t0('after SIGKILL mid-scan, the restarted daemon voids the dead lease: the clean file reads promptly and is not denied', async (t) => {
  const own = ownDir(t);
  const counter = join(own, 'scans.log');
  const hang = join(own, 'hang');
  await writeFile(hang, '');
  const scratch = await makeScratch('ext4', 64);
  t.teardown(() => scratch.cleanup());
  const state = join(scratch.base, 'state');
  await mkdir(state);
  const file = join(scratch.dir, 'doc.txt');
  await writeFile(file, 'doc\n');
  const cfg = join(scratch.base, 'config.yaml');
  // A long lease and scan timeout, as shipped: waiting either out would take far longer than the bound below.
  await writeFile(
    cfg,
    `stateDir: ${state}
guards: [{ path: ${scratch.dir}, kind: filesystem, wait: read }]
gate: { deadline: 60s }
pool: { threads: 2, scanTimeout: 20s }
tags: { lease: 5m }
socket: { path: ${join(scratch.base, 'sock')} }
stack:
  - actor: ${join(FIXTURES, 'moody-actor.js')}
    name: moody
    options: { counter: ${counter}, hangWhile: ${hang} }
  - actor: default
    options: { answer: allow }
`,
  );
  const first = await startDaemonProcess(t, cfg);
  const reader = startChild('cat', [file], 60_000);
  await waitFor('the scan to begin', () => lines(counter).length === 1, 15_000);
  t.regex(native.getXattr(file, TAG)?.toString() ?? '(none)', /^v1 scanning /, 'the hung scan holds its lease');
  await first.kill('SIGKILL');
  await reader.done; // the kernel lets a dead listener's waiters through; what matters is what the next daemon does
  t.regex(native.getXattr(file, TAG)?.toString() ?? '(none)', /^v1 scanning /, 'the dead daemon left its lease behind');
  await rm(hang); // the restarted daemon's scanner works
  await startDaemonProcess(t, cfg);
  const r = await runChild('cat', [file], { timeoutMs: 60_000 });
  t.is(r.stdout, 'doc\n', r.stderr);
  t.true(r.ms < 5_000, `read in ${Math.round(r.ms)} ms: the dead lease was not waited out`);
  t.regex(native.getXattr(file, TAG)?.toString() ?? '(none)', /^v1 ok /);
});

t0("another host's live lease is waited on for one scan timeout at most, then the file is scanned here: never a deny", async (t) => {
  const own = ownDir(t);
  const counter = join(own, 'scans.log');
  const h = await withDaemon(t, 'ext4', {
    scanTimeout: '2s',
    stack: `  - actor: ${join(FIXTURES, 'moody-actor.js')}
    name: moody
    options: { counter: ${counter} }
  - actor: default
    options: { answer: allow }`,
    prepare: (d) => writeFile(join(d, 'shared.txt'), 'shared\n'),
  });
  const file = join(h.dir, 'shared.txt');
  // A daemon on another host (a shared filesystem) holds a five-minute lease and never finishes.
  const elsewhere = new TagStore({ namespace: 'trusted', key: await loadTagKey(h.config.tags.keyFile), leaseMs: 300_000, host: 'another-host', pid: 4242 });
  const fd = openSync(file, 'r');
  try {
    t.like(elsewhere.begin(fd, 'moody'), { status: 'leased' });
  } finally {
    closeSync(fd);
  }
  const r = await runChild('cat', [file], { timeoutMs: 30_000 });
  t.is(r.stdout, 'shared\n', r.stderr);
  t.true(r.ms < 6_000, `read in ${Math.round(r.ms)} ms`);
  t.is(lines(counter).length, 1, 'scanned here once the bounded wait was over');
});
