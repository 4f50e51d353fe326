// Every content entry point the preload library wraps, reached for real from python3 (which calls libc's own
// functions), each on a fresh descriptor so that each call is the first access; plus errno on success, threads
// sharing a descriptor, and `control: ask` at a terminal.
import test from 'ava';
import { chmodSync } from 'node:fs';
import { isRoot } from './helpers/scratch.js';
import { EICAR, EICAR_SCANNER, makePreloadLab } from './helpers/preload-lab.js';

// One at a time: each test makes a user, a mount and several processes; run all at once on a loaded 2-core machine
// they took 50-60 s each and ran into AVA's timeout. In turn each takes a second or two.
const root = isRoot() ? test.serial : test.skip;

const py = (lines: string[]) => lines.join('\n');

root('read, pread, readv, preadv, mmap, sendfile, copy_file_range, splice and stdio fopen all refuse a flagged file with EPERM', async (t) => {
  const lab = await makePreloadLab(t, 'ext4');
  lab.scanner('sig', EICAR_SCANNER);
  lab.config();
  const bad = lab.file('eicar.com', EICAR);
  const script = py([
    'import os, mmap, ctypes',
    `P = ${JSON.stringify(bad)}`,
    'libc = ctypes.CDLL(None, use_errno=True)',
    'libc.fopen.restype = ctypes.c_void_p',
    'def fresh(): return os.open(P, os.O_RDONLY)',
    'def out(): return os.open("/dev/null", os.O_WRONLY)',
    'def piped():',
    '  r, w = os.pipe(); return w',
    'def fopen():',
    '  fp = libc.fopen(P.encode(), b"r")',
    '  if fp: return "READ"',
    '  raise OSError(ctypes.get_errno(), "fopen")',
    'calls = {',
    '  "read": lambda: os.read(fresh(), 100),',
    '  "pread": lambda: os.pread(fresh(), 100, 0),',
    '  "readv": lambda: os.readv(fresh(), [bytearray(100)]),',
    '  "preadv": lambda: os.preadv(fresh(), [bytearray(100)], 0),',
    '  "mmap": lambda: mmap.mmap(fresh(), 0, prot=mmap.PROT_READ)[:10],',
    '  "sendfile": lambda: os.sendfile(out(), fresh(), 0, 100),',
    '  "copy_file_range": lambda: os.copy_file_range(fresh(), os.open(P + ".copy", os.O_WRONLY | os.O_CREAT), 100),',
    '  "splice": lambda: os.splice(fresh(), piped(), 100),',
    '  "fopen": fopen,',
    '}',
    'for name, call in calls.items():',
    '  try:',
    '    call(); print(name, "READ")',
    '  except OSError as e:',
    '    print(name, "errno", e.errno)',
  ]);
  const r = await lab.run('python3', ['-c', script]);
  t.is(r.stderr.includes('Traceback'), false, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.deepEqual(lines, ['read', 'pread', 'readv', 'preadv', 'mmap', 'sendfile', 'copy_file_range', 'splice', 'fopen'].map((n) => `${n} errno 1`));
});

root('exec of a flagged program is refused (execve, execv, posix_spawn, fexecve, execveat), a clean one runs', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  lab.scanner('sig', EICAR_SCANNER);
  lab.config();
  const bad = lab.file('tool.sh', `#!/bin/sh\n# ${EICAR}\necho RAN\n`);
  const good = lab.file('good.sh', '#!/bin/sh\necho RAN\n');
  chmodSync(bad, 0o755);
  chmodSync(good, 0o755);
  const script = py([
    'import os, sys',
    `B, G = ${JSON.stringify(bad)}, ${JSON.stringify(good)}`,
    'def spawn(p):',
    '  pid = os.posix_spawn(p, [p], os.environ); return os.waitpid(pid, 0)[1]',
    'import ctypes',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'def execveat(p):',
    '  argv = (ctypes.c_char_p * 2)(p.encode(), None)',
    '  libc.execveat(-100, p.encode(), argv, None, 0)',
    // -100: AT_FDCWD
    '  raise OSError(ctypes.get_errno(), "execveat")',
    'for name, call in [("posix_spawn", lambda: spawn(B)), ("fexecve", lambda: os.execve(os.open(B, os.O_RDONLY), [B], os.environ)), ("execveat", lambda: execveat(B)), ("execve", lambda: os.execve(B, [B], os.environ)), ("execv", lambda: os.execv(B, [B]))]:',
    '  try:',
    '    call(); print(name, "RAN")',
    '  except OSError as e:',
    '    print(name, "errno", e.errno)',
    'sys.stdout.flush()',
    'os.execv(G, [G])',
  ]);
  const r = await lab.run('python3', ['-c', script]);
  t.is(r.stdout, 'posix_spawn errno 1\nfexecve errno 1\nexecveat errno 1\nexecve errno 1\nexecv errno 1\nRAN\n', r.stderr);
});

root('errno is left as it was by a gated read that passes (scan and tag on the way)', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  lab.scanner('sig', EICAR_SCANNER);
  lab.config();
  const f = lab.file('clean.txt', 'clean\n');
  const script = py([
    'import os, ctypes',
    'libc = ctypes.CDLL(None, use_errno=True)',
    `fd = os.open(${JSON.stringify(f)}, os.O_RDONLY)`,
    'buf = ctypes.create_string_buffer(100)',
    'ctypes.set_errno(4242)',
    'n = libc.read(fd, buf, 100)',
    'print(n, ctypes.get_errno(), buf.value.decode(), end="")',
  ]);
  const r = await lab.run('python3', ['-c', script]);
  t.is(r.stdout, '6 4242 clean\n', r.stderr);
  t.is(lab.scans().length, 1, 'the read was the gated first access');
});

root('threads reading one descriptor at once: one scan, every thread gets the content', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  lab.scanner('slow', `sleep 0.3\n${EICAR_SCANNER}`);
  lab.config();
  const f = lab.file('shared.txt', 'shared content\n');
  const script = py([
    'import os, threading',
    `fd = os.open(${JSON.stringify(f)}, os.O_RDONLY)`,
    'start = threading.Barrier(8); got = []',
    'def reader():',
    '  start.wait(); got.append(os.pread(fd, 100, 0))',
    'ts = [threading.Thread(target=reader) for _ in range(8)]',
    '[x.start() for x in ts]; [x.join() for x in ts]',
    'print(len(got), len(set(got)), got[0].decode(), end="")',
  ]);
  const r = await lab.run('python3', ['-c', script]);
  t.is(r.stdout, '8 1 shared content\n', r.stderr);
  t.is(lab.scans().length, 1);
});

root('control: ask — with a terminal the user decides for a scanner that gave no verdict; without one the entry default answers', async (t) => {
  const lab = await makePreloadLab(t, 'tmpfs');
  const broken = lab.scanner('flaky', 'exit 3', { link: false });
  lab.config(`stack:\n  - name: flaky\n    program: ${broken}\n    control: ask\n    onError: deny\n  - default: allow\n`);
  const f = lab.file('a.txt', 'asked content\n');
  // A pty: the child (cat, preloaded) has /dev/tty; the parent answers the prompt it sees.
  const atTerminal = (reply: string) =>
    py([
      'import os, pty, sys, select',
      'pid, fd = pty.fork()',
      'if pid == 0:',
      `  os.execvp("cat", ["cat", ${JSON.stringify(f)}])`,
      'seen = b""',
      'while b"[y/N]" not in seen:',
      '  r, _, _ = select.select([fd], [], [], 10)',
      '  if not r: print("NO PROMPT"); sys.exit(1)',
      '  seen += os.read(fd, 1000)',
      `os.write(fd, b"${reply}\\n")`,
      'rest = b""',
      'while True:',
      '  try: chunk = os.read(fd, 1000)',
      '  except OSError: break',
      '  if not chunk: break',
      '  rest += chunk',
      'os.waitpid(pid, 0)',
      'print(seen.decode(errors="replace").strip()); print("---"); print(rest.decode(errors="replace"))',
    ]);
  const yes = await lab.run('python3', ['-c', atTerminal('y')]);
  t.regex(yes.stdout, /no verdict from flaky for .*a\.txt — open anyway\? \[y\/N\]/);
  t.regex(yes.stdout.split('---')[1]!, /asked content/);
  const no = await lab.run('python3', ['-c', atTerminal('n')]);
  t.notRegex(no.stdout.split('---')[1]!, /asked content/);
  t.regex(no.stdout.split('---')[1]!, /Operation not permitted/);
  const noTerminal = await lab.run('setsid', ['-w', 'cat', f]);
  t.is(noTerminal.stdout, '');
  t.regex(noTerminal.stderr, /flaky: .* exited with code 3/);
});
