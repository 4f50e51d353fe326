// `blessd check` finds what `blessd run` would fail on, and `run` fails on it the same way: one line naming the
// place, a non-zero exit, no stack trace.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { REPO } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const BLESSD = join(REPO, 'dist/src/cli/blessd.js');

async function dir(t: { teardown(f: () => Promise<void>): void }) {
  const d = await mkdtemp(join(tmpdir(), 'blessd-check-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

const noStack = (s: string) => !/\n\s+at /.test(s) && !/Error: /.test(s.replace(/cannot start: .*$/m, ''));

test('a missing guard path, a missing database, an actor that does not load: each named by file:line:col', async (t) => {
  const d = await dir(t);
  const cfg = join(d, 'config.yaml');
  await mkdir(join(d, 'guarded'));
  // An actor that loads but refuses its options at init, as a real one would.
  await writeFile(join(d, 'broken-actor.js'), `export default { manifest: { api: 1, name: 'broken', version: '1.0.0' }, init() { throw new Error('rules.yar:3: syntax error'); } };\n`);
  await writeFile(
    cfg,
    `stateDir: ${join(d, 'state')}
guards:
  - path: ${join(d, 'guarded')}
  - path: ${join(d, 'nowhere')}
socket: { path: ${join(d, 'sock')} }
stack:
  - actor: signature
    options: { databases: [${join(d, 'no-such-db')}] }
  - actor: ./broken-actor.js
  - actor: default
    options: { answer: allow }
`,
  );
  const r = await runChild('node', [BLESSD, 'check', '--config', cfg], { timeoutMs: 60_000 });
  t.is(r.code, 1, r.stdout);
  t.regex(r.stderr, new RegExp(`^${cfg}:4:5: guards\\[1\\]\\.path: ${join(d, 'nowhere')} does not exist \\(set create: true to make it\\)$`, 'm'));
  t.regex(r.stderr, new RegExp(`^${cfg}:7:5: signature \\(signature\\): .*no-such-db`, 'm'));
  t.regex(r.stderr, new RegExp(`^${cfg}:9:5: broken-actor \\(.*broken-actor\\.js\\): .*rules\\.yar:3: syntax error`, 'm'));
  t.regex(r.stderr, /3 problems: blessd run would not start/);
  t.true(noStack(r.stderr), r.stderr);
  t.notRegex(r.stdout, /: ok/);
});

(isRoot() ? test : test.skip)('blessd run fails on the same problems with the same one line (no stack trace)', async (t) => {
  const d = await dir(t);
  await mkdir(join(d, 'guarded'));
  const base = (guard: string, db: string) => `stateDir: ${join(d, 'state')}
guards:
  - path: ${guard}
socket: { path: ${join(d, 'sock')} }
stack:
  - actor: signature
    options: { databases: [${db}] }
  - actor: default
    options: { answer: allow }
`;
  const cfg = join(d, 'config.yaml');
  await writeFile(cfg, base(join(d, 'nowhere'), join(REPO, 'signatures')));
  const missing = await runChild('node', [BLESSD, 'run', '--config', cfg], { timeoutMs: 60_000 });
  t.is(missing.code, 1);
  t.is(missing.stderr.trim(), `${cfg}:3:5: guards[0].path: ${join(d, 'nowhere')} does not exist (set create: true to make it)`);

  await writeFile(cfg, base(join(d, 'guarded'), join(d, 'no-such-db')));
  const nodb = await runChild('node', [BLESSD, 'run', '--config', cfg], { timeoutMs: 60_000 });
  t.is(nodb.code, 1);
  const lines = nodb.stderr.trim().split('\n');
  const human = lines.filter((l) => !l.startsWith('{'));
  t.is(human.length, 1, nodb.stderr);
  t.regex(human[0]!, new RegExp(`^blessd run: cannot start: ${cfg}:6:5: signature \\(signature\\): .*no-such-db`));
  for (const l of lines.filter((x) => x.startsWith('{'))) t.false('stack' in (JSON.parse(l).err ?? {}), l);
  t.true(noStack(nodb.stderr), nodb.stderr);
});

test('the fleet key file: missing, too short, readable by others, not a file — check names fleet.keyFile and the file; run does not start', async (t) => {
  const d = await dir(t);
  await mkdir(join(d, 'guarded'));
  const key = join(d, 'fleet.key');
  const cfg = join(d, 'config.yaml');
  // Nothing connects to the store at check (nor at run before the key is read).
  await writeFile(
    cfg,
    `stateDir: ${join(d, 'state')}
guards: [{ path: ${join(d, 'guarded')} }]
socket: { path: ${join(d, 'sock')} }
stack: [{ actor: default, options: { answer: allow } }]
fleet: { store: "redis://127.0.0.1:1", keyFile: ${key} }
`,
  );
  const check = () => runChild('node', [BLESSD, 'check', '--config', cfg], { timeoutMs: 60_000 });
  const refused = async (why: string, cause: RegExp) => {
    const r = await check();
    t.is(r.code, 1, `${why}: ${r.stdout}${r.stderr}`);
    t.regex(r.stderr, new RegExp(`^${cfg}: fleet\\.keyFile ${key}: ${cause.source}`, 'm'), `${why}: ${r.stderr}`);
    t.regex(r.stderr, /1 problem: blessd run would not start/, why);
    t.true(noStack(r.stderr), r.stderr);
  };
  await refused('missing', /ENOENT.*head -c 32 \/dev\/urandom/);
  await writeFile(key, randomBytes(16), { mode: 0o600 });
  await refused('too short', /16 bytes, at least 32 needed/);
  await writeFile(key, randomBytes(32));
  await chmod(key, 0o640);
  await refused('readable by its group', /mode 640 lets others read it/);
  await rm(key);
  await mkdir(key);
  await refused('a directory', /not a regular file/);
  await rm(key, { recursive: true });
  await writeFile(key, randomBytes(32), { mode: 0o600 });
  const ok = await check();
  t.is(ok.code, 0, `a usable key: ${ok.stdout}${ok.stderr}`);
  t.notRegex(ok.stderr, /fleet\.keyFile/);

  if (!isRoot()) return;
  await rm(key);
  const run = await runChild('node', [BLESSD, 'run', '--config', cfg], { timeoutMs: 60_000 });
  t.is(run.code, 1, `run fails: ${run.stdout}${run.stderr}`);
  t.regex(run.stderr, new RegExp(`blessd run: cannot start: ${cfg}: fleet\\.keyFile ${key}: ENOENT`), run.stderr);
  t.regex(run.stderr, /"code":"FLEET_KEY_FILE"/, 'the fatal log line carries the stable code');
  t.notRegex(run.stdout, /ready/, 'never ready');
});
