// Out-of-process scanners on the control socket: examples/remote-scanner.py (a short Python program) serves a
// stack entry over the socket, with the file's descriptor passed by SCM_RIGHTS; disconnects and timeouts are
// answered per config.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from '../src/gate/addon.js';
import { runChild } from './helpers/child.js';
import { EXAMPLES, PYTHON, lineChild, withNotify } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const denied = /Operation not permitted/;
// A deny that rests on a failure (timeout, crash, no scanner) is the retryable errno: nothing judged the content.
const retried = /Resource temporarily unavailable/;
const SCANNER = join(EXAMPLES, 'remote-scanner.py');
const tagOf = (path: string, scanner: string) => native.getXattr(path, `trusted.scanned-by.${scanner}`)?.toString() ?? null;

for (const fs of ['ext4', 'tmpfs'] as const) {
  t0(`${fs}: a Python scanner declared in the stack blocks one file and passes another; a disconnect denies without a tag`, async (t) => {
    const h = await withNotify(t, fs, {
      stack: `  - actor: remote
    name: pyscan
  - actor: default
    options: { answer: allow }`,
      prepare: async (d) => {
        await writeFile(join(d, 'bad.txt'), 'some FORBIDDEN words\n');
        await writeFile(join(d, 'good.txt'), 'fine words\n');
        await writeFile(join(d, 'later.txt'), 'fine later\n');
      },
    });
    const scanner = lineChild(t, PYTHON, [SCANNER, h.socket, 'pyscan', 'FORBIDDEN']);
    const reply = JSON.parse(await scanner.waitFor((l) => l.includes('"ok"'), 10_000, 'the register reply'));
    t.like(reply, { ok: true, scanner: 'pyscan', origin: 'config', control: 'required', fd: true });

    t.regex((await runChild('cat', [join(h.dir, 'bad.txt')])).stderr, denied);
    t.is((await runChild('cat', [join(h.dir, 'good.txt')])).stdout, 'fine words\n');
    const scanned = scanner.lines.filter((l) => l.includes('"scanned"')).map((l) => JSON.parse(l));
    t.deepEqual(scanned.map((s) => [s.scanned, s.answer, s.fd]).sort(), [
      [join(h.dir, 'bad.txt'), 'deny', true],
      [join(h.dir, 'good.txt'), 'ok', true],
    ]);
    t.regex(tagOf(join(h.dir, 'bad.txt'), 'pyscan') ?? '', /^v1 deny /, 'the remote answer is a tag like any other');
    t.regex(tagOf(join(h.dir, 'good.txt'), 'pyscan') ?? '', /^v1 ok /);

    // The scanner goes away: its entry stays in the stack, onError (deny) answers, and no tag is written.
    scanner.kill();
    const c = await h.client();
    const pyscan = async () => ((await c.request('status')) as any).queues.scanners.find((s: any) => s.name === 'pyscan');
    // The daemon sees the disconnect when it gets to it.
    await waitFor('the daemon to see the scanner disconnect', async () => (await pyscan()).connected === false);
    t.like(await pyscan(), { connected: false, origin: 'config' });
    t.regex((await runChild('cat', [join(h.dir, 'later.txt')])).stderr, retried);
    t.is(tagOf(join(h.dir, 'later.txt'), 'pyscan'), null);
    t.is((await runChild('cat', [join(h.dir, 'good.txt')])).stdout, 'fine words\n', 'judged before: still passes');

    // Back again: cached verdicts are forgotten and the file is judged by the scanner.
    const again = lineChild(t, PYTHON, [SCANNER, h.socket, 'pyscan', 'FORBIDDEN']);
    await again.waitFor((l) => l.includes('"ok"'), 10_000, 'the register reply');
    t.is((await runChild('cat', [join(h.dir, 'later.txt')])).stdout, 'fine later\n');
  });
}

t0('a scanner registered with mustPass joins the stack before default and re-judges files blessed without it', async (t) => {
  const h = await withNotify(t, 'ext4', { prepare: (d) => writeFile(join(d, 'doc.txt'), 'has NEEDLE inside\n') });
  const file = join(h.dir, 'doc.txt');
  t.is((await runChild('cat', [file])).stdout, 'has NEEDLE inside\n', 'signature and default pass it');

  const scanner = lineChild(t, PYTHON, [SCANNER, h.socket, 'needle', 'NEEDLE']);
  const reply = JSON.parse(await scanner.waitFor((l) => l.includes('"ok"'), 10_000, 'the register reply'));
  t.like(reply, { ok: true, origin: 'dynamic', control: 'required' });
  const c = await h.client();
  const st = (await c.request('status')) as any;
  t.deepEqual(st.stack.map((e: any) => `${e.name}:${e.control}`), ['signature:required', 'needle:required', 'default:required']);

  t.regex((await runChild('cat', [file])).stderr, denied, 'the new must-pass scanner judged the blessed file');
  t.is(h.daemon.stats().scans.signature, 1, 'the signature tag was still valid: not rescanned');

  // It leaves: the stack is back to the config, and the file passes again.
  scanner.kill();
  const names = async () => ((await c.request('status')) as any).stack.map((e: any) => e.name);
  await waitFor('the departed scanner to leave the stack', async () => (await names()).length === 2);
  t.deepEqual(await names(), ['signature', 'default']);
  t.is((await runChild('cat', [file])).stdout, 'has NEEDLE inside\n');
});

t0('a scanner that never answers times out per onTimeout, is told to cancel, and gets path and handle without fd', async (t) => {
  const h = await withNotify(t, 'ext4', {
    stack: `  - actor: remote
    name: silent
    onTimeout: deny
  - actor: default
    options: { answer: allow }`,
    prepare: (d) => writeFile(join(d, 'x.txt'), 'x\n'),
  });
  const silent = lineChild(t, PYTHON, [
    '-c',
    `import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b'{"v":1,"id":1,"op":"register","scanner":"silent","fd":false}\\n')
for line in s.makefile("rb"):
    print(line.decode().strip(), flush=True)`,
    h.socket,
  ]);
  await silent.waitFor((l) => l.includes('"ok":true'), 10_000, 'the register reply');
  const r = await runChild('cat', [join(h.dir, 'x.txt')], { timeoutMs: 20_000 });
  t.regex(r.stderr, retried);
  t.true(r.ms > 4000 && r.ms < 15_000, `the scan timeout (5 s) decided: ${r.ms} ms`);
  const req = JSON.parse(await silent.waitFor((l) => l.includes('"event":"scan"')));
  t.like(req, { v: 1, event: 'scan', scanner: 'silent', path: join(h.dir, 'x.txt'), fd: false, size: 2 });
  t.regex(req.handle, /^[A-Za-z0-9+/=]+$/);
  t.true(Number.isInteger(req.ino) && Number.isInteger(req.dev) && Number.isInteger(req.handleType));
  await silent.waitFor((l) => l.includes('"event":"cancel"') && l.includes(`"req":${req.req}`), 5000, 'the cancel');
  t.is(tagOf(join(h.dir, 'x.txt'), 'silent'), null, 'a timeout answers that access only: no tag, like a pool timeout');
});
