// The preload library (native/preload) with real programs run by an unprivileged user the test creates, on a
// private tmpfs or ext4 mount with user.* xattrs. No daemon and no fanotify: the library gates inside the program.
import test from 'ava';
import { appendFileSync, existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isRoot } from './helpers/scratch.js';
import { EICAR, EICAR_SCANNER, makePreloadLab } from './helpers/preload-lab.js';

// One at a time: each test makes a user, a mount and several processes; run all at once on a loaded 2-core machine
// they took 50-60 s each and ran into AVA's timeout. In turn each takes a second or two.
const root = isRoot() ? test.serial : test.skip;
const SIG = 'sig';

for (const kind of ['tmpfs', 'ext4'] as const) {
  root(`${kind}: EICAR is refused with EPERM at the first read (open succeeds), by cat, python3 and node`, async (t) => {
    const lab = await makePreloadLab(t, kind);
    lab.scanner(SIG, EICAR_SCANNER);
    lab.config();
    const bad = lab.file('eicar.com', EICAR);
    const cat = await lab.run('cat', [bad]);
    t.not(cat.code, 0);
    t.false(cat.stdout.includes('EICAR'), 'no content got through');
    t.regex(cat.stderr, /Operation not permitted/);
    const py = await lab.run('python3', ['-c', `import os\nfd = os.open(${JSON.stringify(bad)}, os.O_RDONLY)\nprint("opened")\ntry:\n  os.read(fd, 100)\n  print("READ")\nexcept OSError as e:\n  print("errno", e.errno)`]);
    t.is(py.stdout, 'opened\nerrno 1\n');
    // node: the synchronous read, and libuv's thread-pool read behind fs.promises
    const node = await lab.run('node', ['-e', `const fs = require('fs'); try { console.log(fs.readFileSync(${JSON.stringify(bad)}, 'utf8')) } catch (e) { console.log(e.code) }
fs.promises.readFile(${JSON.stringify(bad)}, 'utf8').then((d) => console.log(d), (e) => console.log(e.code))`]);
    t.is(node.stdout, 'EPERM\nEPERM\n');
    // The deny was tagged: the later programs did not scan again.
    t.is(lab.scans().length, 1);
    t.regex(lab.scans()[0]!, /^sig .*eicar\.com preload=none /, 'the scanner ran without the preload');
    t.true(lab.scans()[0]!.endsWith(` uid=${lab.user.uid}`), 'as the calling user');
  });

  root(`${kind}: a clean file passes with one scan, gets a tag that verifies in the TypeScript store; a second run reads the tag and does not scan`, async (t) => {
    const lab = await makePreloadLab(t, kind);
    const program = lab.scanner(SIG, EICAR_SCANNER);
    lab.config();
    const good = lab.file('clean.txt', 'hello, world\n');
    const first = await lab.run('cat', [good]);
    t.is(first.stdout, 'hello, world\n');
    t.is(first.code, 0);
    t.is(lab.scans().length, 1);
    const store = await lab.store();
    const fd = openSync(good, 'r');
    t.teardown(() => closeSync(fd));
    const report = store.readSync(fd, { [SIG]: await lab.generation(program, SIG) });
    t.is(report.tags.length, 1);
    t.is(report.tags[0]!.name, 'user.scanned-by.sig');
    t.is(report.tags[0]!.judgement, 'valid', report.tags[0]!.detail);
    t.true(report.tags[0]!.generationChecked);
    t.like(report.tags[0]!.value, { kind: 'result', answer: 'ok' });
    const second = await lab.run('python3', ['-c', `print(open(${JSON.stringify(good)}).read(), end="")`]);
    t.is(second.stdout, 'hello, world\n');
    const third = await lab.run('node', ['-e', `process.stdout.write(require('fs').readFileSync(${JSON.stringify(good)}))`]);
    t.is(third.stdout, 'hello, world\n');
    t.is(lab.scans().length, 1, 'the tag settled the later reads');
  });

  root(`${kind}: a change makes the tag stale: the next read scans again and catches new content`, async (t) => {
    const lab = await makePreloadLab(t, kind);
    const program = lab.scanner(SIG, EICAR_SCANNER);
    lab.config();
    const f = lab.file('doc.txt', 'harmless\n');
    t.is((await lab.run('cat', [f])).stdout, 'harmless\n');
    t.is(lab.scans().length, 1);
    appendFileSync(f, EICAR); // the user's download finishes, or a writer changes the file
    const store = await lab.store();
    const fd = openSync(f, 'r');
    t.teardown(() => closeSync(fd));
    t.is(store.readSync(fd, { [SIG]: await lab.generation(program, SIG) }).tags[0]!.judgement, 'stale-stamp');
    const again = await lab.run('cat', [f]);
    t.not(again.code, 0);
    t.false(again.stdout.includes('EICAR'));
    t.is(lab.scans().length, 2);
    // The stale tag was replaced (XATTR_REPLACE) by the new verdict, which the store reads as valid.
    const fd2 = openSync(f, 'r');
    t.teardown(() => closeSync(fd2));
    const now = store.readSync(fd2, { [SIG]: await lab.generation(program, SIG) }).tags;
    t.is(now.length, 1);
    t.is(now[0]!.judgement, 'valid', now[0]!.detail);
    t.like(now[0]!.value, { kind: 'result', answer: 'deny' });
  });
}

root('tags written by the TypeScript store are honoured by the library without a scan, both ways (deny and ok)', async (t) => {
  const lab = await makePreloadLab(t, 'ext4');
  const program = lab.scanner(SIG, EICAR_SCANNER);
  lab.config();
  const store = await lab.store();
  const gen = await lab.generation(program, SIG);
  const clean = lab.file('clean.txt', 'nothing to see\n');
  const marked = lab.file('eicar.txt', EICAR);
  for (const [path, answer] of [
    [clean, 'deny'],
    [marked, 'ok'],
  ] as const) {
    const fd = openSync(path, 'r');
    const lease = store.begin(fd, SIG, gen);
    if (lease.status !== 'leased') return t.fail('no lease');
    t.is((await store.finish(fd, SIG, lease.token, { answer, reason: 'set by the test' }, gen)).status, 'written');
    closeSync(fd);
  }
  const denied = await lab.run('cat', [clean]);
  t.not(denied.code, 0);
  t.is(denied.stdout, '');
  const passed = await lab.run('cat', [marked]);
  t.is(passed.stdout, EICAR, 'a valid ok tag from the store is a verdict: no scan');
  t.is(lab.scans().length, 0);
});

root('a forged tag (another key) is not believed: the file is scanned', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  const program = lab.scanner(SIG, EICAR_SCANNER);
  lab.config();
  const marked = lab.file('eicar.txt', EICAR);
  const { TagStore } = await import('../src/tags/store.js');
  const { randomBytes } = await import('node:crypto');
  const forger = new TagStore({ namespace: 'user', key: randomBytes(32), host: 'x', pid: 1 });
  const gen = await lab.generation(program, SIG);
  const fd = openSync(marked, 'r');
  const lease = forger.begin(fd, SIG, gen);
  if (lease.status !== 'leased') return t.fail('no lease');
  await forger.finish(fd, SIG, lease.token, { answer: 'ok' }, gen);
  closeSync(fd);
  const r = await lab.run('cat', [marked]);
  t.not(r.code, 0);
  t.false(r.stdout.includes('EICAR'));
  t.is(lab.scans().length, 1);
});

root('an unlinked but open file is still gated (sh holds it, cat reads it from its stdin; python3 unlinks then reads)', async (t) => {
  const lab = await makePreloadLab(t, 'ext4');
  lab.scanner(SIG, EICAR_SCANNER);
  lab.config();
  const bad = lab.file('eicar.com', EICAR);
  const script = lab.file('hold.sh', `exec 3< ${bad}\nrm ${bad}\ncat <&3\necho "cat=$?"\n`);
  const r = await lab.run('sh', [script]);
  t.false(existsSync(bad));
  t.false(r.stdout.includes('EICAR'));
  t.regex(r.stdout, /cat=1/);
  const bad2 = lab.file('eicar2.com', EICAR);
  const py = await lab.run('python3', ['-c', `import os\nf = open(${JSON.stringify(bad2)}, "rb")\nos.unlink(${JSON.stringify(bad2)})\ntry:\n  print(f.read())\nexcept OSError as e:\n  print("errno", e.errno)`]);
  t.is(py.stdout, 'errno 1\n');
  const eicarScans = lab.scans().filter((l) => /eicar2?\.com/.test(l));
  t.is(eicarScans.length, 2);
  t.true(eicarScans.every((l) => !l.includes('(deleted)')), 'display paths drop " (deleted)"');
});

root('a shell script and cp: sh cannot read a flagged script, cp cannot copy a flagged file', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  lab.scanner(SIG, EICAR_SCANNER);
  lab.config();
  const script = lab.file('run.sh', `echo RAN\n# ${EICAR}\n`);
  const sh = await lab.run('sh', [script]);
  t.false(sh.stdout.includes('RAN'), 'the flagged script did not run'); // dash takes the refused read for an end of file
  const fine = lab.file('fine.sh', 'echo RAN\n');
  t.is((await lab.run('sh', [fine])).stdout, 'RAN\n');
  const bad = lab.file('eicar.com', EICAR);
  const out = join(lab.dir, 'copy.com');
  const cp = await lab.run('cp', [bad, out]);
  t.not(cp.code, 0);
  t.regex(cp.stderr, /Operation not permitted/);
  t.false(existsSync(out) && readFileSync(out, 'utf8').includes('EICAR'), 'no copy of the content');
  const clean = lab.file('ok.txt', 'fine\n');
  const cp2 = await lab.run('cp', [clean, join(lab.dir, 'ok2.txt')]);
  t.is(cp2.code, 0);
  t.is(readFileSync(join(lab.dir, 'ok2.txt'), 'utf8'), 'fine\n');
});

root('opt-outs: a program on the neverGated list and BLESSD_PRELOAD=off are not gated (and do not scan)', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  lab.scanner(SIG, EICAR_SCANNER);
  lab.config('neverGated: [wc, cat]\n');
  const bad = lab.file('eicar.com', EICAR);
  const cat = await lab.run('cat', [bad]);
  t.is(cat.stdout, EICAR);
  const wc = await lab.run('wc', ['-c', bad]);
  t.is(wc.stdout.trim(), `${EICAR.length} ${bad}`);
  const off = await lab.run('python3', ['-c', `print(open(${JSON.stringify(bad)}).read(), end="")`], { env: { BLESSD_PRELOAD: 'off' } });
  t.is(off.stdout, EICAR);
  t.is(lab.scans().length, 0);
  // ...while a program not on the list is gated
  const py = await lab.run('python3', ['-c', `print(open(${JSON.stringify(bad)}).read(), end="")`]);
  t.false(py.stdout.includes('EICAR'));
  t.is(lab.scans().length, 1);
});

root('a hung scanner is cut off by its timeout (with its process group): onTimeout deny refuses, onTimeout ok passes', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  const pids = join(lab.dir, 'hung.pids');
  const hang = lab.scanner('hang', `echo $$ >> ${pids}\nsleep 60 &\necho $! >> ${pids}\nwait`, { link: false });
  lab.config(`stack:\n  - name: hang\n    program: ${hang}\n    timeoutMs: 400\n    onTimeout: deny\n  - default: allow\n`);
  const f = lab.file('a.txt', 'content\n');
  const denied = await lab.run('cat', [f], { timeoutMs: 10_000 });
  t.not(denied.code, 0);
  t.is(denied.stdout, '');
  t.regex(denied.stderr, /did not finish within 400 ms/);
  t.true(denied.ms < 5000, `took ${denied.ms} ms`);
  const started = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
  t.is(started.length, 2);
  for (const pid of started) t.false(existsSync(`/proc/${pid}/stat`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'), `scanner process ${pid} was killed`);
  lab.config(`stack:\n  - name: hang\n    program: ${hang}\n    timeoutMs: 400\n    onTimeout: ok\n  - default: allow\n`);
  const passed = await lab.run('cat', [f], { timeoutMs: 10_000 });
  t.is(passed.stdout, 'content\n');
});

root('stack semantics: a sufficient allow settles before a required scanner runs; a requisite deny stops the walk', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  const allow = lab.scanner('vouch', 'exit 10', { link: false });
  const deny = lab.scanner('nope', 'echo no; exit 1', { link: false });
  const later = lab.scanner('later', 'exit 0', { link: false });
  lab.config(`stack:\n  - name: vouch\n    program: ${allow}\n    control: sufficient\n  - name: later\n    program: ${later}\n  - default: deny\n`, { mustPass: false });
  const f = lab.file('a.txt', 'x\n');
  t.is((await lab.run('cat', [f])).stdout, 'x\n');
  t.deepEqual(lab.scans().map((l) => l.split(' ')[0]), ['vouch']);
  lab.config(`stack:\n  - name: nope\n    program: ${deny}\n    control: requisite\n  - name: later\n    program: ${later}\n  - default: allow\n`, { mustPass: false });
  const g = lab.file('b.txt', 'y\n');
  t.not((await lab.run('cat', [g])).code, 0);
  t.deepEqual(lab.scans().map((l) => l.split(' ')[0]), ['vouch', 'nope']);
});

root('a bad config is refused with file:line:col and the key, and fails closed inside the gated paths', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  lab.scanner(SIG, EICAR_SCANNER);
  lab.config('stack:\n  - name: x\n    progam: /bin/true\n');
  const f = lab.file('a.txt', 'x\n');
  const r = await lab.run('cat', [f], { env: { HOME: lab.dir } });
  t.regex(r.stderr, new RegExp(`${lab.configPath.replace(/[.]/g, '\\.')}:5:5: stack\\[\\]\\.progam: unknown key`));
  t.is(r.stdout, '');
  t.not(r.code, 0);
});

root('a file that changes during its scan gets no tag (the stamp is checked again before the conditional write)', async (t) => {
  const lab = await makePreloadLab(t, 'ext4');
  lab.scanner(SIG, 'cat > /dev/null\necho more >> "$BLESSD_PATH"\nexit 0');
  lab.config();
  const f = lab.file('moving.txt', 'first\n');
  const r = await lab.run('cat', [f]);
  t.is(r.code, 0);
  const store = await lab.store();
  const fd = openSync(f, 'r');
  t.teardown(() => closeSync(fd));
  t.deepEqual(store.readSync(fd, {}).tags, [], 'no verdict was written for content that is no longer there');
});

root('a scanner that cannot run is an error answered per onError, said once on stderr; the host program goes on', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  const missing = join(lab.dir, 'no-such-scanner');
  lab.config(`stack:\n  - name: gone\n    program: ${missing}\n  - default: allow\n`);
  const a = lab.file('a.txt', 'a\n');
  const b = lab.file('b.txt', 'b\n');
  const denied = await lab.run('sh', ['-c', `cat ${a}; cat ${b}; echo "still here"`]);
  t.is(denied.stdout, 'still here\n');
  t.is(denied.stderr.match(/gone: .*no-such-scanner exited with code 127/g)?.length, 2, 'once per program (two cats)');
  lab.config(`stack:\n  - name: gone\n    program: ${missing}\n    onError: ok\n  - default: allow\n`);
  const passed = await lab.run('cat', [a, b]);
  t.is(passed.stdout, 'a\nb\n');
  t.is(passed.stderr.match(/gone: .*no-such-scanner exited with code 127 .*answered per the entry's onError\/onTimeout: ok/g)?.length, 1, `once for two files: ${passed.stderr}`);
});

root('config errors name file:line:col and the key, for each kind of mistake', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  const f = lab.file('a.txt', 'a\n');
  const cases: [string, RegExp][] = [
    ['mustPass: relative/dir\n', /:1:11: mustPass: must be an absolute directory/],
    ['timeoutMs: soon\n', /:1:12: timeoutMs: expected a positive integer/],
    ['colour: blue\n', /:1:1: colour: unknown key/],
    ['paths: [/a, b]\n', /:1:13: paths: must be absolute directories/],
    ['stack:\n  - name: x\n    program: /bin/true\n    control: maybe\n', /:4:14: stack\[\]\.control: expected required, requisite/],
    ['stack:\n  - name: Bad\n    program: /bin/true\n', /:2:11: stack\[\]\.name: must match/],
    ['stack:\n  - name: x\n', /:2:5: stack\[\]: an entry needs program/],
    ['stack:\n\t- default: allow\n', /:2:1: stack: tab character/],
    ['neverGated: &anchor [wc]\n', /:1:13: neverGated: expected a list/],
    ['mustPass: &anchor /a\n', /:1:11: mustPass: this YAML feature is not supported/],
  ];
  for (const [yaml, want] of cases) {
    lab.config(yaml, { mustPass: false, paths: false });
    const r = await lab.run('cat', [f], { env: { HOME: lab.dir } });
    t.regex(r.stderr, new RegExp(`${lab.configPath.replace(/[.]/g, '\\.')}${want.source}`), yaml);
    t.is(r.stdout, '', `fails closed: ${yaml}`);
  }
});

root('scope: outside `paths` nothing is scanned, but a valid deny tag is still a deny', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  const program = lab.scanner(SIG, EICAR_SCANNER);
  lab.config();
  const outside = join(lab.dir, '..', 'outside.com');
  const { writeFileSync, chownSync } = await import('node:fs');
  writeFileSync(outside, EICAR);
  chownSync(outside, lab.user.uid, lab.user.gid);
  t.is((await lab.run('cat', [outside])).stdout, EICAR, 'not under paths: not gated');
  t.is(lab.scans().length, 0);
  const store = await lab.store();
  const gen = await lab.generation(program, SIG);
  const fd = openSync(outside, 'r');
  const lease = store.begin(fd, SIG, gen);
  if (lease.status !== 'leased') return t.fail('no lease');
  await store.finish(fd, SIG, lease.token, { answer: 'deny', reason: 'known bad' }, gen);
  closeSync(fd);
  const r = await lab.run('cat', [outside]);
  t.is(r.stdout, '');
  t.regex(r.stderr, /Operation not permitted/);
  t.is(lab.scans().length, 0);
});

root('a key that others can read is refused (said once); the library still gates, scanning every time, and writes no tag', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  lab.scanner(SIG, EICAR_SCANNER);
  lab.config();
  await lab.store(); // creates the key, owned by the user
  const { chmodSync } = await import('node:fs');
  chmodSync(join(lab.stateDir, 'blessd', 'key'), 0o644);
  const f = lab.file('a.txt', 'a\n');
  const bad = lab.file('eicar.com', EICAR);
  const first = await lab.run('cat', [f]);
  t.is(first.stdout, 'a\n');
  t.is(first.stderr.match(/key file .* lets others read it/g)?.length, 1, first.stderr);
  t.is((await lab.run('cat', [f])).stdout, 'a\n');
  t.false((await lab.run('cat', [bad])).stdout.includes('EICAR'));
  t.is(lab.scans().length, 3, 'no tags: every program scans');
  const fd = openSync(f, 'r');
  t.teardown(() => closeSync(fd));
  const { native } = await import('../src/gate/addon.js');
  t.deepEqual(native.listXattr(fd), []);
});

root('the config and key are found where the issue says: $XDG_CONFIG_HOME, else ~/.config; the key in $XDG_STATE_HOME, else ~/.local/state, created 0600', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  lab.scanner(SIG, EICAR_SCANNER);
  lab.config();
  const { chownSync, copyFileSync, mkdirSync, statSync } = await import('node:fs');
  const home = join(lab.dir, 'home');
  const xdg = join(lab.dir, 'xdg');
  for (const dir of [home, join(home, '.config', 'blessd'), join(xdg, 'blessd')]) mkdirSync(dir, { recursive: true });
  for (const dir of [home, join(home, '.config'), join(home, '.config', 'blessd'), xdg, join(xdg, 'blessd')]) chownSync(dir, lab.user.uid, lab.user.gid);
  const bad = lab.file('eicar.com', EICAR);
  // BLESSD_PRELOAD_CONFIG and XDG_STATE_HOME empty: as if unset (the lab sets them otherwise)
  const unset = { BLESSD_PRELOAD_CONFIG: '', XDG_STATE_HOME: '', HOME: home };

  const none = await lab.run('cat', [bad], { env: unset });
  t.is(none.stdout, EICAR, 'no config file: the library does nothing');
  t.is(lab.scans().length, 0);

  copyFileSync(lab.configPath, join(xdg, 'blessd', 'preload.yaml'));
  const viaXdg = await lab.run('cat', [bad], { env: { ...unset, XDG_CONFIG_HOME: xdg } });
  t.is(viaXdg.stdout, '', 'the config in $XDG_CONFIG_HOME/blessd/preload.yaml gates');
  t.regex(viaXdg.stderr, /Operation not permitted/);
  t.is(lab.scans().length, 1);

  copyFileSync(lab.configPath, join(home, '.config', 'blessd', 'preload.yaml'));
  const clean = lab.file('clean.txt', 'clean\n');
  const viaHome = await lab.run('cat', [clean], { env: unset });
  t.is(viaHome.stdout, 'clean\n');
  t.is(lab.scans().length, 2, 'the config in ~/.config/blessd/preload.yaml gates');
  const key = statSync(join(home, '.local', 'state', 'blessd', 'key'));
  t.is(key.mode & 0o777, 0o600, 'the key is created 0600');
  t.is(key.uid, lab.user.uid);
  t.is(statSync(join(home, '.local', 'state', 'blessd')).mode & 0o777, 0o700);
  t.false(existsSync(join(lab.stateDir, 'blessd', 'key')), 'not in the lab state dir the other tests use');
});

root('a new scanner program makes older tags stale (its generation is in the tag): the next read scans again', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  const program = lab.scanner(SIG, EICAR_SCANNER);
  lab.config();
  const f = lab.file('a.txt', 'a\n');
  t.is((await lab.run('cat', [f])).stdout, 'a\n');
  t.is((await lab.run('cat', [f])).stdout, 'a\n');
  t.is(lab.scans().length, 1, 'same program: the tag holds');
  appendFileSync(program, '# a new version of the scanner\n');
  t.is((await lab.run('cat', [f])).stdout, 'a\n');
  t.is(lab.scans().length, 2, 'new program: the tag is stale');
  t.is((await lab.run('cat', [f])).stdout, 'a\n');
  t.is(lab.scans().length, 2, 'and the new tag holds');
});
