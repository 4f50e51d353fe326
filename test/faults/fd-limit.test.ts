// Running out of descriptors is a fault of the moment, not a verdict: with the daemon under a low RLIMIT_NOFILE,
// clean files whose judging failed with EMFILE are refused for that access (fail closed), and read normally once
// the descriptors are back — nothing was stored in the native verdict table or in tags.
import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from '../../src/gate/addon.js';
import { runChild } from '../helpers/child.js';
import { REPO } from '../helpers/daemon-harness.js';
import { startDaemonProcess } from '../helpers/daemon-process.js';
import { isRoot, makeScratch } from '../helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;
// `check` refuses a limit below what maxPending needs, so the daemon starts with its normal limit and the limit is
// lowered under it (prlimit --pid), as when something else eats its descriptors; then it is raised again.
const LOW_NOFILE = 256;
const FILES = 400;

// Reads every file at once, one thread per file: each read of an unjudged file is a permission event whose fd the
// kernel opens in the daemon, plus the daemon's own descriptor of the file while it is judged, so hundreds pending
// together need more descriptors than the lowered limit. One line per file: "ok" or the errno name.
const READ_ALL_AT_ONCE = `
import os, sys, errno, threading
paths = sys.argv[1:]
out = [None] * len(paths)
fds = [os.open(p, os.O_RDONLY) for p in paths]
start = threading.Barrier(len(paths))
def read(i):
    start.wait()
    try:
        os.read(fds[i], 64); out[i] = "ok"
    except OSError as e:
        out[i] = errno.errorcode.get(e.errno, str(e.errno))
threads = [threading.Thread(target=read, args=(i,)) for i in range(len(paths))]
for t in threads: t.start()
for t in threads: t.join()
print("\\n".join(out))
`;
const READ_ONE_BY_ONE = `
import os, sys, errno
for p in sys.argv[1:]:
    try:
        with open(p, "rb") as f: f.read(64)
        print("ok")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
`;

const tally = (out: string) => out.trim().split('\n').reduce<Record<string, number>>((m, l) => ((m[l] = (m[l] ?? 0) + 1), m), {});

t0('clean files that failed with EMFILE under a low `ulimit -n` are not denied once descriptors are back', async (t) => {
  t.timeout(180_000); // hundreds of cold files on a shared 2-core machine
  const scratch = await makeScratch('ext4', 128);
  t.teardown(() => scratch.cleanup());
  const state = join(scratch.base, 'state');
  await mkdir(state);
  const files: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const f = join(scratch.dir, `clean-${i}.txt`);
    await writeFile(f, `clean file ${i}\n`);
    files.push(f);
  }
  const cfg = join(scratch.base, 'config.yaml');
  await writeFile(
    cfg,
    `stateDir: ${state}
guards: [{ path: ${scratch.dir}, kind: filesystem, wait: read }]
gate: { deadline: 20s }
pool: { threads: 2, scanTimeout: 10s }
socket: { path: ${join(scratch.base, 'sock')} }
log: { level: warn }
stack:
  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: default
    options: { answer: allow }
`,
  );
  const d = await startDaemonProcess(t, cfg);
  const pid = String(d.child.pid);
  const [soft, hard] = (await runChild('prlimit', ['--pid', pid, '--nofile', '--raw', '--noheadings', '--output=SOFT,HARD'])).stdout.trim().split(/\s+/);
  t.is((await runChild('prlimit', ['--pid', pid, `--nofile=${LOW_NOFILE}:${hard}`])).code, 0);
  const held = await runChild('python3', ['-c', READ_ALL_AT_ONCE, ...files], { timeoutMs: 80_000 });
  const first = tally(held.stdout);
  t.log(`${FILES} reads at once:`, first, held.stderr.slice(0, 300));
  // Out of descriptors shows in one of two places: JS logs its EMFILE, or the reader thread could not take the
  // kernel's event fd (the kernel then refuses that access itself, EPERM) and counts a read error.
  const stats = await runChild(process.execPath, [join(REPO, 'dist/src/cli/blessctl.js'), 'stats', '--json', '--socket', join(scratch.base, 'sock')]);
  const readErrors = (JSON.parse(stats.stdout || '{}') as { gate?: { readErrors?: number } }).gate?.readErrors ?? 0;
  t.true(/EMFILE|Too many open files/.test(d.output()) || readErrors > 0, `the daemon did run out of descriptors (read errors ${readErrors}; ${stats.stderr})`);
  t.true((first['ok'] ?? 0) < FILES, 'some accesses were refused while descriptors were short (fail closed)');
  // The shortage is over: every clean file reads, and none carries a deny tag.
  t.is((await runChild('prlimit', ['--pid', pid, `--nofile=${soft}:${hard}`])).code, 0);
  const after = await runChild('python3', ['-c', READ_ONE_BY_ONE, ...files], { timeoutMs: 80_000 });
  t.deepEqual(tally(after.stdout), { ok: FILES }, after.stderr.slice(0, 300));
  const denyTags = files.filter((f) => /^v1 deny /.test(native.getXattr(f, 'trusted.scanned-by.signature')?.toString() ?? ''));
  t.deepEqual(denyTags, []);
  t.log('daemon log lines mentioning EMFILE:', d.output().split('\n').filter((l) => /EMFILE|Too many open files/.test(l)).length);
});
