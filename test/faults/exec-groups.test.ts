// Hung exec scanners leak no processes: the program runs in its own process group, and when the pool gives the scan
// up — its timeout (the worker is destroyed), the caller's cancel, shutdown — the whole group is killed, the
// `sleep 3600` it started in the background included; and the killed program, a child of this process whose worker
// is gone, is reaped (no zombie until the process exits).
import test from 'ava';
import { chmodSync, closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ScanPool, type PoolEntry } from '../../src/pool/scan-pool.js';
import { tempDir, type TempDir } from '../helpers/actor-files.js';
import { runChild } from '../helpers/child.js';
import { startDaemonProcess } from '../helpers/daemon-process.js';
import { isRoot, makeScratch } from '../helpers/scratch.js';
import { waitFor } from '../helpers/wait.js';

/** Running (not zombie) processes whose process group is `pgid`. */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'latin1');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] !== 'Z' && Number(f[2]) === pgid) out.push(Number(d));
  }
  return out;
}

/** Zombie children of this process (the pool runs here: scanner programs are our children). */
function ourZombies(parent = process.pid): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z' && Number(f[1]) === parent) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

interface Ctx {
  dir: TempDir;
  pool: ScanPool;
  entry: PoolEntry;
  file: { fd: number; size: number; path: string };
  /** pgid of the scanner program once it started (it writes `$$ $!`), and the background sleep's pid. */
  started(): Promise<{ pgid: number; sleep: number }>;
}

function setup(t: { teardown(fn: () => void | Promise<void>): void }): Ctx {
  const dir = tempDir('blessd-groups-');
  const log = `${dir.dir}/started.log`;
  const program = dir.write('hang.sh', `#!/bin/sh\nsleep 3600 &\necho $$ $! >> ${log}\nwait\n`);
  chmodSync(program, 0o755);
  const path = dir.write('f', 'content\n');
  const fd = openSync(path, 'r');
  const pool = new ScanPool({ threads: 1 });
  const killed: number[] = [];
  t.teardown(async () => {
    await pool.close();
    // Whatever the code under test left behind must not outlive the test.
    for (const pid of killed) for (const p of groupMembers(pid)) process.kill(p, 'SIGKILL');
    closeSync(fd);
    dir.cleanup();
  });
  return {
    dir,
    pool,
    // The program's own timeout is far away: only the pool can end these scans.
    entry: { name: 'hang', actor: 'exec', options: { program, timeoutMs: 600_000 } },
    file: { fd, size: fstatSync(fd).size, path },
    async started() {
      await waitFor('the scanner program to start', () => existsSync(log) && readFileSync(log, 'utf8').includes('\n'), 15_000);
      const [pgid, sleep] = readFileSync(log, 'utf8').trim().split(' ').map(Number) as [number, number];
      killed.push(pgid);
      t.teardown(() => {
        try {
          process.kill(sleep, 'SIGKILL');
        } catch {
          /* gone, as it should be */
        }
      });
      return { pgid, sleep };
    },
  };
}

async function assertGroupGone(t: { true(v: boolean, m?: string): void }, pgid: number) {
  await waitFor(`process group ${pgid} to end (left: ${groupMembers(pgid).join(',')})`, () => groupMembers(pgid).length === 0, 5_000);
  t.true(groupMembers(pgid).length === 0);
  // The program itself was our child: killed, it must also be waited for, not left a zombie.
  await waitFor(`the killed program ${pgid} to be reaped (our zombies: ${ourZombies().join(',')})`, () => !ourZombies().includes(pgid), 5_000);
  t.true(!ourZombies().includes(pgid));
}

test.serial('the pool timeout kills the scanner program and its background child', async (t) => {
  const c = setup(t);
  const outcome = c.pool.scan(c.file, c.entry, { timeoutMs: 1_000 });
  const { pgid, sleep } = await c.started();
  t.true(groupMembers(pgid).includes(sleep), 'the sleep runs in the program group');
  t.like(await outcome, { kind: 'error', code: 'timeout' });
  await assertGroupGone(t, pgid);
});

test.serial("the caller's cancel kills the group", async (t) => {
  const c = setup(t);
  const ac = new AbortController();
  const outcome = c.pool.scan(c.file, c.entry, { timeoutMs: 600_000, signal: ac.signal });
  const { pgid } = await c.started();
  ac.abort(new Error('file dirtied'));
  await t.throwsAsync(outcome, { message: 'file dirtied' });
  await assertGroupGone(t, pgid);
});

test.serial('shutdown kills the group of a scan in flight', async (t) => {
  const c = setup(t);
  const outcome = c.pool.scan(c.file, c.entry, { timeoutMs: 600_000 });
  const { pgid } = await c.started();
  await c.pool.close();
  await t.throwsAsync(outcome, { code: 'POOL_CLOSED' } as never);
  await assertGroupGone(t, pgid);
});

test.serial('a program that exits leaves nothing running in its group', async (t) => {
  const c = setup(t);
  const quick = c.dir.write('quick.sh', `#!/bin/sh\nsleep 3600 &\necho $$ $! >> ${c.dir.dir}/started.log\nexit 0\n`);
  chmodSync(quick, 0o755);
  const o = await c.pool.scan(c.file, { name: 'quick', actor: 'exec', options: { program: quick } }, { timeoutMs: 10_000 });
  t.like(o, { kind: 'answer', answer: 'ok' });
  const { pgid } = await c.started();
  await assertGroupGone(t, pgid);
});

(isRoot() ? test.serial : test.skip)('blessd run: every hung scan the pool timed out leaves no zombie behind in the daemon', async (t) => {
  const dir = tempDir('blessd-zombies-');
  t.teardown(() => dir.cleanup());
  const log = `${dir.dir}/started.log`;
  const program = dir.write('hang.sh', `#!/bin/sh\ncat >/dev/null\necho $$ >> ${log}\nsleep 3600\n`);
  chmodSync(program, 0o755);
  const scratch = await makeScratch('ext4', 64);
  t.teardown(() => scratch.cleanup());
  const state = join(scratch.base, 'state');
  await mkdir(state);
  for (let i = 0; i < 3; i++) await writeFile(join(scratch.dir, `f${i}`), `file ${i}\n`);
  const cfg = join(scratch.base, 'config.yaml');
  await writeFile(
    cfg,
    `stateDir: ${state}
guards: [{ path: ${scratch.dir}, kind: filesystem, wait: read }]
pool: { threads: 2, scanTimeout: 1s }
socket: { path: ${join(scratch.base, 'sock')} }
stack:
  - actor: exec
    name: hang
    options: { program: ${program}, timeoutMs: 600000 }
    onTimeout: deny
  - actor: default
    options: { answer: allow }
`,
  );
  const daemon = await startDaemonProcess(t, cfg);
  const pid = daemon.child.pid!;
  for (let i = 0; i < 3; i++) {
    const r = await runChild('cat', [join(scratch.dir, `f${i}`)], { timeoutMs: 30_000 });
    t.regex(r.stderr, /Resource temporarily unavailable/, `f${i}: the pool timeout answers with onTimeout (retryable)`);
  }
  const started = readFileSync(log, 'utf8').trim().split('\n').map(Number);
  t.is(started.length, 3);
  // Each program was the daemon's child, its worker destroyed at the timeout: killed, and waited for.
  await waitFor(`the daemon's killed scanners to be reaped (zombies: ${ourZombies(pid).join(',')})`, () => started.every((p) => !ourZombies(pid).includes(p)), 10_000);
  for (const p of started) t.false(existsSync(`/proc/${p}`) && readFileSync(`/proc/${p}/stat`, 'latin1').includes(`(hang.sh)`), `scanner ${p} is gone`);
});
