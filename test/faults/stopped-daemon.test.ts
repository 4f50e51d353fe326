// A deadline measures time the daemon could have worked. A daemon stopped (SIGSTOP) with an access waiting, for
// longer than gate.deadline, answers that access with its verdict once it runs again — not with the deadline's
// EAGAIN, which would turn the stop itself into refusals. The deadline still answers when only JS is stuck.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlClient } from '../../src/notify/client.js';
import type { GateStats } from '../../src/gate/types.js';
import { startChild } from '../helpers/child.js';
import { startDaemonProcess } from '../helpers/daemon-process.js';
import { isRoot, makeScratch } from '../helpers/scratch.js';
import { clockPast, waitFor } from '../helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const DEADLINE_MS = 3000;

t0('an access that waited through a SIGSTOP of the daemon gets its verdict on SIGCONT, not the deadline answer', async (t) => {
  // The scanner (outside the guard) says it started, then waits until the test releases it through a FIFO.
  const own = mkdtempSync(join(tmpdir(), 'blessd-stop-'));
  t.teardown(() => rmSync(own, { recursive: true, force: true }));
  const started = join(own, 'started');
  const release = join(own, 'release');
  execFileSync('mkfifo', [release]);
  const program = join(own, 'held.sh');
  await writeFile(program, `#!/bin/sh\ncat >/dev/null\necho started >> ${started}\nread line < ${release}\nexit 0\n`);
  chmodSync(program, 0o755);

  const scratch = await makeScratch('ext4', 64);
  t.teardown(() => scratch.cleanup());
  const state = join(scratch.base, 'state');
  await mkdir(state);
  const file = join(scratch.dir, 'doc.txt');
  await writeFile(file, 'the content\n');
  const socket = join(scratch.base, 'sock');
  const cfg = join(scratch.base, 'config.yaml');
  await writeFile(
    cfg,
    `stateDir: ${state}
guards: [{ path: ${scratch.dir}, kind: filesystem, wait: read }]
gate: { deadline: ${DEADLINE_MS}ms, onDeadline: retry }
pool: { threads: 1, scanTimeout: 60s }
socket: { path: ${socket} }
stack:
  - actor: exec
    name: held
    options: { program: ${program}, timeoutMs: 60000 }
  - actor: default
    options: { answer: allow }
`,
  );
  const daemon = await startDaemonProcess(t, cfg);
  const pid = daemon.child.pid!;
  // If the test fails while the daemon is stopped, it must still be killable and its waiters answered.
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
  });
  const client = await ControlClient.connect(socket);
  t.teardown(() => client.close());
  const gate = async () => ((await client.request('stats')) as { stats: { gate: GateStats } }).stats.gate;

  const reader = startChild('cat', [file], 60_000);
  t.teardown(() => reader.child.kill('SIGKILL'));
  await waitFor('the scanner to start', () => existsSync(started), 15_000);
  await waitFor('the read to wait in JS', async () => (await gate()).pendingNow === 1, 5_000);
  const before = await gate();
  t.is(before.deadlineStops, 0, `no stop seen while the daemon ran (counted ${before.deadlineStoppedMs} ms)`);

  // The fault: the whole daemon stopped for longer than its deadline, the reader waiting all along.
  process.kill(pid, 'SIGSTOP');
  await clockPast(Date.now() + DEADLINE_MS + 2000); // the length of the stop is the fault: the clock is the event
  process.kill(pid, 'SIGCONT');

  // The reader thread looks at its clock first thing after the stop; the control socket answers once JS runs.
  await waitFor('the reader thread to see the stop', async () => (await gate()).deadlineStops >= 1, 5_000);
  t.is(reader.child.exitCode, null, 'the read is still waiting, not refused');
  const g = await gate();
  t.is(g.answeredByDeadline, 0);
  t.true(g.deadlineStoppedMs >= DEADLINE_MS, `counted ${g.deadlineStoppedMs} ms of the ${DEADLINE_MS + 2000} ms stop`);

  // Now the scanner answers, well within what is left of the deadline: the read gets the content.
  const w = await open(release, 'w');
  await w.write('go\n');
  await w.close();
  const r = await reader.done;
  t.is(r.stderr, '');
  t.is(r.code, 0);
  t.is(r.stdout, 'the content\n');
  const after = await gate();
  t.is(after.answeredByDeadline, 0);
  t.is(after.answeredByJs, 1);
  t.is(readFileSync(started, 'utf8'), 'started\n', 'one scan');
});
