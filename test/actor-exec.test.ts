import test from 'ava';
import { chmodSync, readFileSync, unlinkSync } from 'node:fs';
import exec from '../actors/exec.js';
import { waitFor } from './helpers/wait.js';
import { tempDir, type TempDir } from './helpers/actor-files.js';

// A display path that does not exist: a program that answers from it can only have read its stdin.
const GHOST = '/nonexistent/blessd-exec-test/file.txt';

function withDir(t: { teardown(fn: () => void): void }): TempDir {
  const d = tempDir('blessd-exec-');
  t.teardown(() => d.cleanup());
  return d;
}

function script(d: TempDir, name: string, body: string): string {
  const path = d.write(name, '#!/bin/sh\n' + body + '\n');
  chmodSync(path, 0o755);
  return path;
}

/** Alive = exists and is not a zombie (a container's pid 1 may not reap orphans). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const GREP = `word=$(grep -o -m1 -E 'EVIL|BLESSED' | head -n1)
case "$word" in
  EVIL) echo "EVIL in $BLESSD_PATH"; echo "second line"; exit 1;;
  BLESSED) exit 10;;
esac
exit 0`;

test('a grep script answers deny / ok / allow by exit code, reading only its stdin', async (t) => {
  const d = withDir(t);
  const actor = await exec.init({ program: script(d, 'grep.sh', GREP), timeoutMs: 10_000 });
  t.deepEqual(await actor.scan(d.open(d.write('a', 'some EVIL content\n'), GHOST)), { answer: 'deny', reason: `EVIL in ${GHOST}` });
  t.deepEqual(await actor.scan(d.open(d.write('b', 'harmless\n'), GHOST)), { answer: 'ok' });
  t.deepEqual(await actor.scan(d.open(d.write('c', 'BLESSED by the vendor\n'), GHOST)), { answer: 'allow' });
  // Content larger than a pipe buffer and several chunks: the word near the end is still seen.
  const big = Buffer.concat([Buffer.alloc(3 << 20, 0x61), Buffer.from('\nEVIL\n')]);
  t.is((await actor.scan(d.open(d.write('big', big), GHOST))).answer, 'deny');
});

test('BLESSD_PATH, BLESSD_SIZE, BLESSD_SCANNER, args and env reach the program', async (t) => {
  const d = withDir(t);
  const program = script(d, 'env.sh', 'cat >/dev/null; echo "$BLESSD_SCANNER|$BLESSD_SIZE|$BLESSD_PATH|$1|$EXTRA"; exit 1');
  const actor = await exec.init({ program, args: ['first-arg'], env: { EXTRA: 'extra-value' } }, { name: 'my-scanner' });
  const r = await actor.scan(d.open(d.write('f', '12345'), GHOST));
  t.deepEqual(r, { answer: 'deny', reason: `my-scanner|5|${GHOST}|first-arg|extra-value` });
});

test('exit 1 without output gives the reason "exit 1"', async (t) => {
  const d = withDir(t);
  const actor = await exec.init({ program: script(d, 'quiet.sh', 'exit 1') });
  t.deepEqual(await actor.scan(d.open(d.write('f', 'x'))), { answer: 'deny', reason: 'exit 1' });
});

test('a program that exits without reading a 10 MiB file still answers by its exit code (EPIPE is normal)', async (t) => {
  const d = withDir(t);
  const file = d.write('big.bin', Buffer.alloc(10 << 20, 0x41));
  const early = await exec.init({ program: script(d, 'early.sh', 'echo early verdict; exit 1'), timeoutMs: 10_000 });
  const ok = await exec.init({ program: script(d, 'ok.sh', 'exit 0'), timeoutMs: 10_000 });
  const allow = await exec.init({ program: script(d, 'allow.sh', 'exit 10'), timeoutMs: 10_000 });
  t.deepEqual(await early.scan(d.open(file, GHOST)), { answer: 'deny', reason: 'early verdict' });
  t.deepEqual(await ok.scan(d.open(file, GHOST)), { answer: 'ok' });
  t.deepEqual(await allow.scan(d.open(file, GHOST)), { answer: 'allow' });
  // Reads a little, then leaves.
  const partial = await exec.init({ program: script(d, 'partial.sh', 'head -c 1000 >/dev/null; exit 0'), timeoutMs: 10_000 });
  t.deepEqual(await partial.scan(d.open(file, GHOST)), { answer: 'ok' });
});

test('a hanging program times out with an error naming it, and it and its children are killed', async (t) => {
  const d = withDir(t);
  const pids = `${d.dir}/pids`;
  const program = script(d, 'hang.sh', `sleep 60 & echo "$$ $!" > ${pids}; wait`);
  const actor = await exec.init({ program, timeoutMs: 500 });
  const started = Date.now();
  const err = await t.throwsAsync(actor.scan(d.open(d.write('f', 'x'), GHOST)));
  t.true(Date.now() - started < 5_000);
  t.is((err as { code?: string }).code, 'ACTOR_EXEC_TIMEOUT');
  t.true(err!.message.includes(program), err!.message);
  const [shell, child] = readFileSync(pids, 'utf8').trim().split(' ').map(Number) as [number, number];
  await waitFor(`the script (pid ${shell}) and its child (pid ${child}) to be gone, killed with their process group`, () => !alive(shell) && !alive(child), 5_000);
});

test('other exit codes, signals and spawn failures are errors naming the program and the code', async (t) => {
  const d = withDir(t);
  const three = script(d, 'three.sh', 'exit 3');
  const e3 = await t.throwsAsync((await exec.init({ program: three })).scan(d.open(d.write('f', 'x'))));
  t.is((e3 as { code?: string }).code, 'ACTOR_EXEC_EXIT');
  t.true(e3!.message.includes(three) && e3!.message.includes('code 3'), e3!.message);

  const killed = script(d, 'killed.sh', 'kill -TERM $$');
  const es = await t.throwsAsync((await exec.init({ program: killed })).scan(d.open(d.write('g', 'x'))));
  t.is((es as { code?: string }).code, 'ACTOR_EXEC_SIGNAL');
  t.regex(es!.message, /SIGTERM/);

  const vanishing = script(d, 'vanishing.sh', 'exit 0');
  const actor = await exec.init({ program: vanishing });
  unlinkSync(vanishing);
  const ev = await t.throwsAsync(actor.scan(d.open(d.write('h', 'x'))));
  t.is((ev as { code?: string }).code, 'ACTOR_EXEC_SPAWN');
  t.true(ev!.message.includes(vanishing));
});

test('options are checked at init, naming the option', async (t) => {
  const d = withDir(t);
  await t.throwsAsync(async () => exec.init({}), { message: /^exec: options\.program must be/ });
  await t.throwsAsync(async () => exec.init({ program: 'relative.sh' }), { message: /options\.program must be an absolute path/ });
  await t.throwsAsync(async () => exec.init({ program: `${d.dir}/missing.sh` }), { message: /missing\.sh/ });
  const notExec = d.write('plain.sh', 'exit 0\n');
  await t.throwsAsync(async () => exec.init({ program: notExec }), { message: /not a readable executable/ });
  const ok = script(d, 'ok.sh', 'exit 0');
  await t.throwsAsync(async () => exec.init({ program: ok, timeoutMs: -1 }), { message: /options\.timeoutMs/ });
  await t.throwsAsync(async () => exec.init({ program: ok, args: 'x' }), { message: /options\.args/ });
  await t.throwsAsync(async () => exec.init({ program: ok, env: { A: 1 } }), { message: /options\.env/ });
  await t.throwsAsync(async () => exec.init({ program: ok, timeout: 5 }), { message: /unknown option options\.timeout/ });
});

test('the generation follows the program bytes and path', async (t) => {
  const d = withDir(t);
  const a = script(d, 'a.sh', 'exit 0');
  const b = script(d, 'b.sh', 'exit 0');
  const gen = async (program: string) => (await exec.init({ program })).generation;
  const ga = await gen(a);
  t.is(await gen(a), ga);
  t.not(await gen(b), ga, 'same bytes, other path');
  script(d, 'a.sh', 'exit 1');
  t.not(await gen(a), ga, 'other bytes');
});
