// The command-line daemon as a user runs it: `blessd check`, `blessd run`, signals.
import test from 'ava';
import { existsSync, statSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import { runChild, startChild } from './helpers/child.js';
import { FIXTURES, REPO } from './helpers/daemon-harness.js';
import { isRoot, makeScratch } from './helpers/scratch.js';
import { makeAttacker } from './helpers/attacker.js';
import { BLESSD, startDaemonProcess } from './helpers/daemon-process.js';
import { waitHeld } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;

test('blessd check explains the shipped config', async (t) => {
  const r = await runChild('node', [BLESSD, 'check', '--config', join(REPO, 'config.yaml')]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /config\.yaml: ok/);
  t.regex(r.stdout, /signature/);
  t.regex(r.stdout, /\/var\/lib\/blessd\/demo/);
});

test('blessd check names the line and key of a bad config', async (t) => {
  const dir = join(REPO, 'dist', 'tmp-cli-test');
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'bad.yaml');
  await writeFile(file, 'guards:\n  - path: /tmp\nstack:\n  - actor: default\n    control: requird\n');
  const r = await runChild('node', [BLESSD, 'check', '--config', file]);
  t.is(r.code, 1);
  t.regex(r.stderr, /bad\.yaml:5:\d+: stack\[0\]\.control/);
});

t0('blessd run refuses EICAR, reads clean files, and SIGTERM releases blocked readers with EAGAIN (never the unscanned content) and exits 0', async (t) => {
  const scratch = await makeScratch('ext4');
  const state = join(scratch.base, 'state');
  const cfg = join(scratch.base, 'config.yaml');
  await writeFile(join(scratch.dir, 'eicar.com'), EICAR);
  await writeFile(join(scratch.dir, 'ok.txt'), 'ok\n');
  await writeFile(join(scratch.dir, 'held.txt'), 'held\n');
  await writeFile(
    cfg,
    `stateDir: ${state}
guards: [{ path: ${scratch.dir}, kind: filesystem, wait: read }]
pool: { scanTimeout: 60s }
socket: { path: ${join(scratch.base, 'sock')} }
stack:
  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: ${join(FIXTURES, 'word-actor.js')}
    name: slowpoke
    options: { word: held, answer: ok, ms: 60000, sleepOnlyIfFound: true }
  - actor: default
    options: { answer: allow }
`,
  );
  t.teardown(() => scratch.cleanup()); // after the daemon's own teardown (last in, first out)
  const d = await startDaemonProcess(t, cfg);
  t.true(statSync(join(scratch.base, 'sock')).isSocket(), 'the control socket is up once ready');
  t.regex((await runChild('cat', [join(scratch.dir, 'eicar.com')])).stderr, /Operation not permitted/);
  t.is((await runChild('cat', [join(scratch.dir, 'ok.txt')])).stdout, 'ok\n');
  // Three readers stuck behind a scanner that takes a minute.
  const readers = [1, 2, 3].map(() => startChild('cat', [join(scratch.dir, 'held.txt')], 30_000));
  for (const r of readers) await waitHeld(r.child.pid!, 'a reader held behind the minute-long scan', { syscall: 'read' });
  d.child.kill('SIGTERM');
  // Fail closed at stop: the scan never finished, so the readers get the deadline's answer (EAGAIN), not the content.
  const results = await Promise.all(readers.map((r) => r.done));
  for (const r of results) {
    t.is(r.stdout, '', 'unscanned content was served at stop');
    t.regex(r.stderr, /Resource temporarily unavailable/);
  }
  t.is((await d.exited).code, 0, d.log());
  t.true(results.every((r) => r.ms < 10_000));
  t.false(existsSync(join(scratch.base, 'sock')), 'the socket file is removed at stop');
});

test('--help of blessd and blessctl prints to stdout, exits 0, and needs neither root nor the native addon', async (t) => {
  // A copy of the built package without build/ (no addon), run as an unprivileged user when we are root.
  const base = await mkdtemp(join(tmpdir(), 'blessd-noaddon-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  await cp(join(REPO, 'dist'), join(base, 'dist'), { recursive: true });
  await cp(join(REPO, 'package.json'), join(base, 'package.json'));
  await symlink(join(REPO, 'node_modules'), join(base, 'node_modules'));
  await chmod(base, 0o755);
  const as = isRoot() ? await makeAttacker(t) : undefined;
  const node = (args: string[]) => (as ? as.run(process.execPath, args) : runChild(process.execPath, args));
  for (const [cli, args] of [
    ['blessd', ['--help']],
    ['blessd', ['help']],
    ['blessctl', ['--help']],
    ['blessctl', ['tags', '--help']],
  ] as const) {
    const r = await node([join(base, `dist/src/cli/${cli}.js`), ...args]);
    t.is(r.code, 0, `${cli} ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stdout, /^Usage/, `${cli} ${args.join(' ')}`);
    t.is(r.stderr, '', `${cli} ${args.join(' ')}`);
  }
  // And the addon really is absent there: a command that needs it says so.
  const load = await node(['--input-type=module', '-e', `await import(${JSON.stringify(join(base, 'dist/src/gate/addon.js'))})`]);
  t.not(load.code, 0);
  t.regex(load.stderr, /native addon missing/);
});

test('a closed pipe is quiet: blessd check | head -1', async (t) => {
  const r = await runChild('sh', ['-c', `node ${BLESSD} check --config ${join(REPO, 'config.yaml')} | head -1; echo "rc=\${PIPESTATUS:-}"`]);
  t.regex(r.stdout, /config\.yaml: ok/);
  t.notRegex(r.stderr, /EPIPE|Error/);
  // sh has no PIPESTATUS: check the exit status of blessd itself through bash.
  const b = await runChild('bash', ['-c', `node ${BLESSD} check --config ${join(REPO, 'config.yaml')} | head -1 >/dev/null; echo "\${PIPESTATUS[0]}"`]);
  t.is(b.stdout.trim(), '0', b.stderr);
  t.is(b.stderr, '');
});
