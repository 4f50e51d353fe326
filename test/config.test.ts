// Configuration loading: the shipped config.yaml, defaults, path resolution, units, and one case per kind of
// mistake, each of which must name file:line:col and the key.
import test from 'ava';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, isExemptPath, loadConfig, parseConfig, parseDuration, parseMode, parseSize } from '../src/config/index.js';

// dist/test/config.test.js -> repo root
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'blessd-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const MINIMAL = `guards:
  - path: /srv/files
stack:
  - actor: default
    options: { answer: allow }
`;

/** The ConfigError thrown for `text`, or a test failure. */
function problems(text: string, file = '/etc/blessd/config.yaml'): ConfigError {
  try {
    parseConfig(text, file);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

test('the shipped config.yaml loads with the documented values', (t) => {
  const c = loadConfig(join(ROOT, 'config.yaml'));
  t.is(c.file, join(ROOT, 'config.yaml'));
  t.deepEqual(c.guards, [{ path: '/var/lib/blessd/demo', kind: 'tree', wait: 'read', create: true, demo: true, origin: c.guards[0]!.origin }]);
  t.regex(c.guards[0]!.origin, /config\.yaml:\d+:\d+$/);
  t.deepEqual(c.stack.map((e) => [e.name, e.actor, e.control]), [
    ['signature', 'signature', 'required'],
    ['default', 'default', 'required'],
  ]);
  // ./signatures is relative to the config file, not to the working directory.
  t.deepEqual(c.stack[0]!.options, { databases: [join(ROOT, 'signatures')] });
  t.deepEqual(c.stack[1]!.options, { answer: 'allow' });
  t.is(c.stack[0]!.maxSize, 1024 ** 3);
  t.is(c.tags.namespace, 'trusted');
  t.is(c.log.level, 'info');
  t.is(c.socket.path, '/run/blessd.sock');
  t.is(c.socket.mode, 0o660); // written as 0660, which YAML 1.2 alone would read as decimal 660
  t.is(c.gate.deadline, 30_000);
  t.is(c.tags.lease, 5 * 60_000);
  t.is(c.mustPass.dir, null);
  t.true(Object.isFrozen(c) && Object.isFrozen(c.stack) && Object.isFrozen(c.stack[0]!.options));
});

test('defaults fill everything not written', (t) => {
  const c = parseConfig(MINIMAL, '/etc/blessd/config.yaml');
  t.is(c.stateDir, '/var/lib/blessd');
  t.deepEqual(c.tags, { namespace: 'trusted', keyFile: '/var/lib/blessd/tag.key', stamp: 'ctime', lease: 300_000 });
  t.deepEqual(c.guards, [{ path: '/srv/files', kind: 'tree', wait: 'read', create: false, demo: false, origin: c.guards[0]!.origin }]);
  t.regex(c.guards[0]!.origin, /^\/etc\/blessd\/config\.yaml:\d+:\d+$/);
  t.deepEqual(c.gate, {
    deadline: 30_000,
    accessDeadline: 30_000,
    onDeadline: 'retry',
    maxPending: 4096,
    maxPendingPerUid: 1024,
    denyErrno: 'EPERM',
    retryErrno: 'EAGAIN',
    whileWriting: 'wait',
    audit: false,
    sharedMapSweep: 2000,
    settleWalk: { enabled: true, filesPerSecond: 5000 },
  });
  t.deepEqual(c.exempt, { uids: [], executables: [], paths: [], pathMatchers: [] });
  t.deepEqual(c.pool, { threads: 2, scanTimeout: 20_000, rescanDebounce: 200, queuePerUid: 1024, rescan: 'onClose' });
  t.deepEqual(c.mustPass, { dir: null, control: 'required', position: 'beforeDefault' });
  t.deepEqual(c.socket, { path: '/run/blessd.sock', group: null, mode: 0o660 });
  t.deepEqual(c.crawl, { enabled: false, filesPerSecond: 100, pauseOnBattery: true });
  t.deepEqual(c.log, { level: 'info' });
  t.deepEqual(c.stack[0], {
    actor: 'default',
    builtin: true,
    name: 'default',
    control: 'required',
    options: { answer: 'allow' },
    maxSize: 1024 ** 3,
    onError: 'deny',
    onTimeout: 'deny',
    onTooLarge: 'deny',
    baseDir: '/etc/blessd',
    origin: '/etc/blessd/config.yaml:4:5',
  });
});

test('relative paths resolve against the config file directory, on disk', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'actors'));
  await writeFile(join(dir, 'actors', 'my-scanner.js'), 'export default {};\n');
  await writeFile(
    join(dir, 'blessd.yaml'),
    `stateDir: state
guards:
  - path: ./demo
  - path: /abs/elsewhere
    kind: mount
    wait: open
stack:
  - actor: ./actors/my-scanner.js
    control: optional
  - actor: exec
    name: clam
    options: { program: bin/clamscan, args: [--quiet] }
  - actor: default
socket: { path: run/blessd.sock, mode: "0640", group: 1000 }
mustPass: { dir: must-pass.d, position: end }
`,
  );
  const c = loadConfig(join(dir, 'blessd.yaml'));
  t.is(c.stateDir, join(dir, 'state'));
  t.is(c.tags.keyFile, join(dir, 'state', 'tag.key')); // follows stateDir
  t.deepEqual(c.guards.map((g) => [g.path, g.kind, g.wait]), [
    [join(dir, 'demo'), 'tree', 'read'],
    ['/abs/elsewhere', 'mount', 'open'],
  ]);
  t.is(c.stack[0]!.actor, join(dir, 'actors', 'my-scanner.js'));
  t.false(c.stack[0]!.builtin);
  t.is(c.stack[0]!.name, 'my-scanner'); // a module's name defaults to its file name
  t.deepEqual(c.stack[1]!.options, { program: join(dir, 'bin/clamscan'), args: ['--quiet'] });
  t.is(c.socket.path, join(dir, 'run/blessd.sock'));
  t.is(c.socket.mode, 0o640);
  t.is(c.socket.group, 1000);
  t.is(c.mustPass.dir, join(dir, 'must-pass.d'));
  t.is(c.mustPass.position, 'end');
});

test('sizes, durations, modes and globs parse as documented', (t) => {
  t.is(parseSize('256MiB'), 256 * 1024 ** 2);
  t.is(parseSize('1G'), 1024 ** 3);
  t.is(parseSize('1.5 KiB'), 1536);
  t.is(parseSize('2MB'), 2_000_000);
  t.is(parseSize(4096), 4096);
  t.regex(parseSize('12 furlongs') as string, /must be a size/);
  t.regex(parseSize(-1) as string, />= 0/);
  t.is(parseDuration('30s'), 30_000);
  t.is(parseDuration('5m'), 300_000);
  t.is(parseDuration('200ms'), 200);
  t.is(parseDuration('1m30s'), 90_000);
  t.is(parseDuration(250), 250);
  t.regex(parseDuration('soon') as string, /must be a duration/);
  t.regex(parseDuration('5 parsecs') as string, /must be a duration/);
  t.is(parseMode(432, '0o660'), 0o660);
  t.is(parseMode(660, '0660'), 0o660);
  t.is(parseMode('0640', '"0640"'), 0o640);
  t.regex(parseMode(660, '660') as string, /octal/);
  t.regex(parseMode('0999', '"0999"') as string, /octal/);
});

test('exempt paths compile to matchers', (t) => {
  const c = parseConfig(`${MINIMAL}exempt:\n  paths: ["/var/log/**", "**/*.swp"]\n  uids: [0, 998]\n  executables: [/usr/bin/rsync]\n`, '/etc/blessd/c.yaml');
  t.deepEqual(c.exempt.paths, ['/var/log/**', '**/*.swp']);
  t.deepEqual(c.exempt.uids, [0, 998]);
  t.deepEqual(c.exempt.executables, ['/usr/bin/rsync']);
  t.true(isExemptPath(c.exempt.pathMatchers, '/var/log/kern.log'));
  t.true(isExemptPath(c.exempt.pathMatchers, '/home/u/.f.swp'));
  t.false(isExemptPath(c.exempt.pathMatchers, '/home/u/f.txt'));
});

// One case per kind of mistake: [what, config text, expected "line:col: key: message" fragment].
const BAD: [string, string, RegExp][] = [
  ['unknown top-level key', `${MINIMAL}gaurds: []\n`, /config\.yaml:6:1: gaurds: unknown key \(did you mean "guards"\?\)/],
  ['unknown nested key', `${MINIMAL}gate:\n  deadlin: 5s\n`, /config\.yaml:7:3: gate\.deadlin: unknown key \(did you mean "deadline"\?\)/],
  ['unknown key in a stack entry', MINIMAL.replace('    options:', '    control: required\n    optons: {}\n    options:'), /config\.yaml:6:5: stack\[0\]\.optons: unknown key/],
  ['wrong type: string for a number', `${MINIMAL}pool:\n  threads: two\n`, /config\.yaml:7:3: pool\.threads: must be a whole number from 1 to 1024 \(got "two"\)/],
  ['wrong type: map for a list', `guards:\n  path: /srv\nstack:\n  - actor: default\n`, /config\.yaml:1:1: guards: must be a list \(got a map\)/],
  ['wrong type: list for a boolean', `${MINIMAL}crawl:\n  enabled: [yes]\n`, /config\.yaml:7:3: crawl\.enabled: must be true or false \(got a list\)/],
  [
    'bad enum',
    `guards:\n  - path: /srv\nstack:\n  - actor: signature\n  - actor: default\n    control: requird\n`,
    /config\.yaml:6:5: stack\[1\]\.control: must be one of required, requisite, sufficient, optional, observe \(got "requird"\)/,
  ],
  ['bad guard kind', `guards:\n  - path: /srv\n    kind: directory\nstack:\n  - actor: default\n`, /config\.yaml:3:5: guards\[0\]\.kind: must be one of tree, mount, filesystem \(got "directory"\)/],
  [
    'duplicate scanner names',
    `guards:\n  - path: /srv\nstack:\n  - actor: signature\n  - actor: exec\n    name: signature\n  - actor: default\n`,
    /config\.yaml:6:5: stack\[1\]\.name: duplicate scanner name "signature" \(first used at \/etc\/blessd\/config\.yaml:4:5\)/,
  ],
  ['bad scanner name', `guards:\n  - path: /srv\nstack:\n  - actor: default\n    name: Default!\n`, /config\.yaml:5:5: stack\[0\]\.name: must match/],
  ['bad size string', `guards:\n  - path: /srv\nstack:\n  - actor: default\n    maxSize: 12 furlongs\n`, /config\.yaml:5:5: stack\[0\]\.maxSize: must be a size .* \(got "12 furlongs"\)/],
  ['bad duration string', `${MINIMAL}gate:\n  deadline: soon\n`, /config\.yaml:7:3: gate\.deadline: must be a duration/],
  ['per-uid share above maxPending', `${MINIMAL}gate:\n  maxPending: 100\n  maxPendingPerUid: 200\n`, /config\.yaml:8:3: gate\.maxPendingPerUid: must not exceed gate\.maxPending/],
  ['settle walk rate of zero', `${MINIMAL}gate:\n  settleWalk: { filesPerSecond: 0 }\n`, /config\.yaml:7:\d+: gate\.settleWalk\.filesPerSecond: /],
  ['settle walk unknown key', `${MINIMAL}gate:\n  settleWalk:\n    enable: true\n`, /config\.yaml:8:5: gate\.settleWalk\.enable: unknown key \(did you mean "enabled"\?\)/],
  ['accessDeadline above an hour', `${MINIMAL}gate:\n  accessDeadline: 2h\n`, /config\.yaml:7:3: gate\.accessDeadline: must be at most 1h/],
  ['onDeadline unknown', `${MINIMAL}gate:\n  onDeadline: maybe\n`, /config\.yaml:7:3: gate\.onDeadline: /],
  ['YAML syntax error', `guards:\n  - path: /srv\nstack: [\n  - actor: default\n`, /config\.yaml:\d+:\d+: YAML: /],
  ['duplicate YAML key', `${MINIMAL}log:\n  level: info\n  level: debug\n`, /config\.yaml:8:3: YAML: Map keys must be unique/],
  ['maxPending above the fd limit', `${MINIMAL}gate:\n  maxPending: 100000000\n`, /config\.yaml:7:3: gate\.maxPending: 100000000 waiting events hold 100000000 fds, plus 128 for the rest, but this process may open \d+ \(RLIMIT_NOFILE\)/],
  ['decimal socket mode', `${MINIMAL}socket:\n  mode: 660\n`, /config\.yaml:7:3: socket\.mode: must be an octal file mode/],
  ['missing guard path', `guards:\n  - kind: tree\nstack:\n  - actor: default\n`, /config\.yaml:2:5: guards\[0\]\.path: required/],
  ['no guards at all', `stack:\n  - actor: default\n`, /config\.yaml:1:1: guards: required/],
  ['empty stack', `guards:\n  - path: /srv\nstack: []\n`, /config\.yaml:3:1: stack: needs at least one entry/],
  ['unknown actor', `guards:\n  - path: /srv\nstack:\n  - actor: sigature\n`, /config\.yaml:4:5: stack\[0\]\.actor: must be a built-in .* \(got "sigature"\); did you mean "signature"\?/],
  ['missing actor module', `guards:\n  - path: /srv\nstack:\n  - actor: ./nowhere.js\n`, /config\.yaml:4:5: stack\[0\]\.actor: module not found: \/etc\/blessd\/nowhere\.js/],
  ['relative exempt executable', `${MINIMAL}exempt:\n  executables: [rsync]\n`, /config\.yaml:7:17: exempt\.executables\[0\]: must be an absolute path/],
  ['relative exempt glob', `${MINIMAL}exempt:\n  paths: ["*.log"]\n`, /config\.yaml:7:11: exempt\.paths\[0\]: a glob must start with/],
  ['negative uid', `${MINIMAL}exempt:\n  uids: [-1]\n`, /config\.yaml:7:10: exempt\.uids\[0\]: must be a whole number/],
  ['bad onError', `guards:\n  - path: /srv\nstack:\n  - actor: default\n    onError: ignore\n`, /config\.yaml:5:5: stack\[0\]\.onError: must be one of deny, ok, retry/],
  ['options not a map', `guards:\n  - path: /srv\nstack:\n  - actor: default\n    options: allow\n`, /config\.yaml:5:5: stack\[0\]\.options: must be a map/],
  ['alias that points nowhere', `guards:\n  - path: /srv\nstack:\n  - actor: default\n    control: *ctl\n`, /config\.yaml:5:14: stack\[0\]\.control: unknown alias \*ctl/],
  ['the file is a list', `- guards\n`, /config\.yaml:1:1: must be a map of stateDir, tags/],
];

for (const [what, text, expected] of BAD) {
  test(`bad config: ${what}`, (t) => {
    const err = problems(text);
    t.is(err.code, 'BLESSD_CONFIG');
    t.true(err.issues.some((i) => expected.test(i)), `issues:\n${err.issues.join('\n')}`);
    t.regex(err.message, expected);
  });
}

test('every problem is reported at once, in file order', (t) => {
  const err = problems(`log:\n  level: loud\nguards:\n  - path: /srv\n    wait: later\nstack:\n  - actor: default\n    onTooLarge: maybe\n`);
  t.deepEqual(
    err.issues.map((i) => i.split(': ')[0]),
    ['/etc/blessd/config.yaml:2:3', '/etc/blessd/config.yaml:5:5', '/etc/blessd/config.yaml:8:5'],
  );
  t.regex(err.message, /\(3 problems\)/);
});

test('a missing file is a ConfigError naming the path', (t) => {
  const err = t.throws(() => loadConfig('/nonexistent/blessd.yaml'), { instanceOf: ConfigError });
  t.is(err?.code, 'BLESSD_CONFIG');
  t.regex(err!.message, /\/nonexistent\/blessd\.yaml: cannot read the configuration \(ENOENT\)/);
});

test('an empty file reports the two required sections', (t) => {
  const err = problems('');
  t.deepEqual(err.issues.map((i) => i.replace(/^.*?: /, '').split(':')[0]), ['guards', 'stack']);
});

test('the example in docs/config.md loads', async (t) => {
  const doc = await readFile(join(ROOT, 'docs', 'config.md'), 'utf8');
  const example = /## Example[^]*?```yaml\n([^]*?)```/.exec(doc)?.[1];
  t.truthy(example);
  const dir = await tempDir(t);
  await mkdir(join(dir, 'scanners'));
  await writeFile(join(dir, 'scanners', 'entropy.js'), 'export default {};\n');
  await writeFile(join(dir, 'config.yaml'), example!);
  const c = loadConfig(join(dir, 'config.yaml'));
  t.deepEqual(c.stack.map((e) => [e.name, e.control]), [
    ['allowlist', 'sufficient'],
    ['signature', 'requisite'],
    ['entropy', 'observe'],
    ['default', 'required'],
  ]);
  t.deepEqual(c.stack[0]!.options, { file: join(dir, 'allowlist.txt') });
  t.is(c.stack[1]!.maxSize, 256 * 1024 ** 2);
  t.is(c.socket.group, 'blessd');
});
