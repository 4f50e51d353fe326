// blessd under systemd: the notify protocol against a real AF_UNIX datagram socket the test opens (python3, since
// node's dgram has no unix sockets), and the shipped unit file checked by systemd-analyze.
import test from 'ava';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EICAR } from '../src/daemon/demo.js';
import { runChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';
import { lineChild, PYTHON } from './helpers/notify-harness.js';
import { isRoot, makeScratch } from './helpers/scratch.js';
import { within } from './helpers/wait.js';

const run = promisify(execFile);
const BLESSD = join(REPO, 'dist/src/cli/blessd.js');
const UNIT = join(REPO, 'packaging/systemd/blessd.service');
const t0 = isRoot() ? test.serial : test.skip;

// Prints every datagram received on argv[1] as one JSON line (newlines inside a message become '|').
const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print(json.dumps(s.recv(4096).decode().replace("\\n", "|")), flush=True)
`;

t0('blessd run speaks sd_notify: READY=1 once guarded, STATUS, WATCHDOG=1 pings, RELOADING on SIGHUP, STOPPING=1', async (t) => {
  const scratch = await makeScratch('ext4');
  t.teardown(() => scratch.cleanup());
  await writeFile(join(scratch.dir, 'eicar.com'), EICAR);
  const cfg = join(scratch.base, 'config.yaml');
  await writeFile(
    cfg,
    `stateDir: ${join(scratch.base, 'state')}
guards: [{ path: ${scratch.dir}, kind: filesystem, wait: read }]
socket: { path: ${join(scratch.base, 'sock')} }
stack:
  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: default
    options: { answer: allow }
`,
  );
  const notifySocket = join(scratch.base, 'notify.sock');
  const rx = lineChild(t, PYTHON, ['-u', '-c', RECEIVER, notifySocket]);
  await rx.waitFor((l) => l === 'listening', 10_000, 'the receiver to listen');
  const messages = () => rx.lines.filter((l) => l !== 'listening').map((l) => JSON.parse(l) as string);
  const waitMessage = (re: RegExp, after = 0, what = String(re)) =>
    rx.waitFor(() => messages().slice(after).some((m) => re.test(m)), 20_000, what);

  // WATCHDOG_USEC of 0.4 s: pings every 0.2 s.
  const d = lineChild(t, 'env', [`NOTIFY_SOCKET=${notifySocket}`, 'WATCHDOG_USEC=400000', process.execPath, BLESSD, 'run', '--config', cfg]);
  await waitMessage(/^READY=1/, 0, 'READY=1');
  const ready = messages().find((m) => m.startsWith('READY=1'))!;
  t.regex(ready, new RegExp(`STATUS=guarding ${scratch.dir} \\(filesystem, (read|open)\\); stack signature:required default:`));
  t.regex(ready, new RegExp(`MAINPID=${d.child.pid}`));
  // READY means guarded: the very next read of EICAR is refused.
  t.regex((await runChild('cat', [join(scratch.dir, 'eicar.com')])).stderr, /Operation not permitted/);

  await rx.waitFor(() => messages().filter((m) => m === 'WATCHDOG=1').length >= 3, 20_000, 'three watchdog pings');

  const before = messages().length;
  d.child.kill('SIGHUP');
  await waitMessage(/^READY=1/, before, 'READY=1 after the reload');
  const afterHup = messages().slice(before);
  const reloading = afterHup.findIndex((m) => /^RELOADING=1\|MONOTONIC_USEC=\d+$/.test(m));
  t.true(reloading >= 0 && reloading < afterHup.findIndex((m) => m.startsWith('READY=1')), afterHup.join('\n'));

  const exited = new Promise<number | null>((resolve) => d.child.on('exit', (code) => resolve(code)));
  const beforeStop = messages().length;
  d.child.kill('SIGTERM');
  t.is(await within('blessd to exit after SIGTERM', exited, 15_000), 0, d.stderr());
  await waitMessage(/^STOPPING=1/, beforeStop, 'STOPPING=1');
});

t0('without NOTIFY_SOCKET nothing is sent and nothing fails', async (t) => {
  const { SystemdNotifier } = await import('../src/daemon/systemd.js');
  const { makeLogger } = await import('../src/daemon/logger.js');
  const sd = new SystemdNotifier(makeLogger('error'), {});
  t.false(sd.enabled);
  t.is(sd.watchdogMs, undefined);
  sd.ready('x');
  sd.stopping();
  // A watchdog meant for another process (WATCHDOG_PID) is not ours to ping.
  const other = new SystemdNotifier(makeLogger('error'), { NOTIFY_SOCKET: '/nonexistent', WATCHDOG_USEC: '1000000', WATCHDOG_PID: String(process.pid + 1) });
  t.is(other.watchdogMs, undefined);
  t.is(new SystemdNotifier(makeLogger('error'), { NOTIFY_SOCKET: '/nonexistent', WATCHDOG_USEC: '1000000' }).watchdogMs, 500);
});

test('the shipped unit passes systemd-analyze verify, with Type=notify, a watchdog, restart and reload', async (t) => {
  const unit = await readFile(UNIT, 'utf8');
  for (const line of ['Type=notify', 'ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure', 'NoNewPrivileges=yes']) t.true(unit.includes(`\n${line}\n`), line);
  t.regex(unit, /\nWatchdogSec=\d+s\n/);
  let analyze: string;
  try {
    analyze = (await run('sh', ['-c', 'command -v systemd-analyze'])).stdout.trim();
  } catch {
    t.log('systemd-analyze is not installed here: only the unit text was checked');
    return;
  }
  // verify insists that ExecStart exists: point it at this checkout's build, in a copy of the unit.
  const { mkdtemp, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const dir = await mkdtemp(join(tmpdir(), 'blessd-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const copy = join(dir, 'blessd.service');
  await writeFile(copy, unit.replace('/usr/bin/blessd', `${process.execPath} ${BLESSD}`));
  const r = await runChild(analyze, ['verify', copy]);
  t.is(r.code, 0, r.stderr);
  // It reports unknown keys and bad values on stderr without failing: none allowed.
  t.is(r.stderr.trim(), '', r.stderr);
});
