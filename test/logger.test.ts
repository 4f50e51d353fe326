// Logs as an admin reads them: journald lines with priorities when stderr is the journal, rate-limited denials.
import test from 'ava';
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { LogLimit } from '../src/daemon/log-limit.js';
import { REPO } from './helpers/daemon-harness.js';

async function scratchDir(t: { teardown(f: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'blessd-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Run a child whose stderr is `file`, the way systemd hands a service its journal stream (JOURNAL_STREAM=dev:ino). */
function runWithStderr(file: string, script: string, journal: boolean): Promise<number | null> {
  const fd = openSync(file, 'w');
  const st = fstatSync(fd, { bigint: true });
  const env = { ...process.env, ...(journal ? { JOURNAL_STREAM: `${st.dev}:${st.ino}` } : {}) };
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', fd], env, cwd: REPO });
  closeSync(fd);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

const SCRIPT = `
import { makeLogger } from './dist/src/daemon/logger.js';
const log = makeLogger('debug');
log.debug('looking');
log.info({ path: '/srv/a b' }, 'guarding');
log.warn({ path: '/srv/new\\nline' }, 'denied /srv/x: EICAR');
log.error('broken');
`;

test('under the journal, each record is one line with its syslog priority and no timestamp', async (t) => {
  const out = join(await scratchDir(t), 'stderr');
  t.is(await runWithStderr(out, SCRIPT, true), 0);
  const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
  t.deepEqual(lines, ['<7>looking', '<6>guarding path=/srv/a b', '<4>denied /srv/x: EICAR path=/srv/new line', '<3>broken']);
});

test('elsewhere (a file, a pipe) the log stays JSON lines; a JOURNAL_STREAM naming another file is not believed', async (t) => {
  const out = join(await scratchDir(t), 'stderr');
  t.is(await runWithStderr(out, SCRIPT, false), 0);
  const records = readFileSync(out, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(records.map((r) => r.msg), ['looking', 'guarding', 'denied /srv/x: EICAR', 'broken']);
  const other = join(await scratchDir(t), 'stderr');
  const fd = openSync(other, 'w');
  const st = fstatSync(fd, { bigint: true });
  closeSync(fd);
  const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, JOURNAL_STREAM: `${st.dev}:${st.ino}` }, cwd: REPO });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d) => (err += d));
  await new Promise((r) => child.on('exit', r));
  t.is(JSON.parse(err.split('\n')[0]!).msg, 'looking');
});

test('a flood of one kind of line is cut at the burst and summarised with its count', async (t) => {
  const file = join(await scratchDir(t), 'log');
  const log = pino({ level: 'info' }, pino.destination({ dest: file, sync: true }));
  const limit = new LogLimit(log, 20, 60_000);
  let passed = 0;
  for (let i = 0; i < 100; i++) if (limit.take('denied')) passed++;
  t.true(limit.take('fail-closed'), 'another kind has its own budget');
  t.is(passed, 20);
  limit.flush();
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
  t.is(lines.length, 1);
  t.like(lines[0], { kind: 'denied', suppressed: 80 });
  t.regex(lines[0].msg, /80 more denied lines not logged/);
});
