// The control socket under bad input and foreign users, and blessctl's socket commands against a real daemon.
import test from 'ava';
import { connect, type Socket } from 'node:net';
import { chmod, mkdir, stat, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EICAR } from '../src/daemon/demo.js';
import { runChild } from './helpers/child.js';
import { waitFor } from './helpers/wait.js';
import { PYTHON, lineChild, withNotify } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;
const BLESSCTL = fileURLToPath(new URL('../src/cli/blessctl.js', import.meta.url));

/** A raw connection: write bytes, read reply lines, see the close. */
function raw(path: string): Promise<{ s: Socket; lines: string[]; closed: Promise<void>; next(): Promise<any> }> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const lines: string[] = [];
    let buf = '';
    const waiting: (() => void)[] = [];
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      const parts = buf.split('\n');
      buf = parts.pop()!;
      lines.push(...parts);
      for (const w of waiting.splice(0)) w();
    });
    const closed = new Promise<void>((r) => s.on('close', () => (r(), waiting.splice(0).forEach((w) => w()))));
    s.on('error', () => {});
    let read = 0;
    const next = () =>
      new Promise<any>((res, rej) => {
        const timer = setTimeout(() => rej(new Error(`no reply; got ${lines.join(' | ')}`)), 5000);
        const check = () => {
          if (read < lines.length) {
            clearTimeout(timer);
            res(JSON.parse(lines[read++]!));
          } else if (s.destroyed) {
            clearTimeout(timer);
            rej(new Error('closed'));
          } else waiting.push(check);
        };
        check();
      });
    s.once('connect', () => resolve({ s, lines, closed, next }));
    s.once('error', reject);
  });
}

t0('junk, wrong versions, unknown ops, huge lines and vanishing clients get error replies or a closed connection; the daemon goes on', async (t) => {
  const h = await withNotify(t, 'tmpfs', {
    limits: { maxClients: 6, maxBadLines: 10 },
    prepare: async (d) => {
      await mkdir(join(d, 'tree'));
      for (let i = 0; i < 50; i++) await writeFile(join(d, 'tree', `f${i}`), `f${i}\n`);
    },
  });
  const c = await raw(h.socket);
  c.s.write('this is not json\n');
  t.like(await c.next(), { v: 1, id: null, ok: false, error: { code: 'BAD_JSON' } });
  c.s.write('[1,2,3]\n');
  t.like(await c.next(), { ok: false, error: { code: 'BAD_JSON' } });
  c.s.write('{"id":7,"op":"hello"}\n');
  t.like(await c.next(), { id: 7, ok: false, error: { code: 'BAD_VERSION' } });
  c.s.write('{"v":2,"id":8,"op":"hello"}\n');
  t.like(await c.next(), { id: 8, ok: false, error: { code: 'BAD_VERSION' } });
  c.s.write('{"v":1,"id":"x","op":"rm -rf"}\n');
  const unknown = await c.next();
  t.like(unknown, { id: 'x', ok: false, error: { code: 'UNKNOWN_OP' } });
  t.regex(unknown.error.message, /hello/, 'lists the ops');
  c.s.write('{"v":1,"id":9,"op":"__proto__"}\n{"v":1,"id":10,"op":"scan"}\n{"v":1,"id":11,"op":"subscribe","verdicts":"yes"}\n');
  // Replies name their request; an async op may answer after a later sync one.
  const three = [await c.next(), await c.next(), await c.next()].sort((x, y) => x.id - y.id);
  t.like(three[0], { id: 9, error: { code: 'UNKNOWN_OP' } });
  t.like(three[1], { id: 10, error: { code: 'BAD_REQUEST' } });
  t.like(three[2], { id: 11, error: { code: 'BAD_REQUEST' } });
  c.s.write('{"v":1,"id":12,"op":"answer","req":999,"answer":"allow"}\n');
  t.like(await c.next(), { id: 12, error: { code: 'UNKNOWN_REQUEST' } });
  c.s.write('\n\n{"v":1,"id":13,"op":"hello"}\n');
  t.like(await c.next(), { id: 13, ok: true, server: 'blessd', version: 1 }, 'still served after seven bad lines');

  // Too many bad lines: the connection goes.
  for (let i = 0; i < 5; i++) c.s.write('junk\n');
  await c.closed;
  t.true(c.lines.some((l) => l.includes('bad requests: closing')));

  // A huge line without a newline: an error, then the connection is closed.
  const big = await raw(h.socket);
  big.s.write('{"v":1,"op":"hello","pad":"' + 'x'.repeat(70 * 1024));
  await big.closed;
  t.true(big.lines.some((l) => JSON.parse(l).error?.code === 'LINE_TOO_LONG'), big.lines.join('|'));

  // A client that asks for a tree scan and vanishes at once, one that leaves half a line.
  const gone = await raw(h.socket);
  gone.s.end(JSON.stringify({ v: 1, id: 1, op: 'scan', path: join(h.dir, 'tree') }) + '\n');
  gone.s.destroy();
  const half = await raw(h.socket);
  half.s.write('{"v":1,"id":1,"op":"sta');
  half.s.destroy();

  // Beyond maxClients: refused with a reason.
  const held = await Promise.all([1, 2, 3, 4, 5, 6].map(() => raw(h.socket)));
  const extra = await raw(h.socket);
  await extra.closed;
  t.true(extra.lines.some((l) => JSON.parse(l).error?.code === 'TOO_MANY_CLIENTS'), extra.lines.join('|'));
  for (const x of held) x.s.destroy();
  await waitFor('the server to see the held clients go', () => h.server.clients === 0);

  // The daemon goes on: hello, a tree scan, and a guarded read all work.
  const ok = await h.client();
  t.like(await ok.request('hello'), { ok: true });
  const progress: any[] = [];
  const r = (await ok.request('scan', { path: join(h.dir, 'tree') }, { onProgress: (p) => progress.push(p) })) as any;
  t.like(r.scan, { total: 50, done: 50, allowed: 50, denied: 0, errors: 0 });
  t.true(progress.length >= 2 && progress[progress.length - 1].done === 50);
  t.is((await runChild('cat', [join(h.dir, 'tree', 'f1')])).stdout, 'f1\n');
  const stats = (await ok.request('stats')) as any;
  t.true(stats.stats.notify.badLines >= 10);
  t.is(stats.stats.notify.refused, 1);
  t.is(h.daemon.stats().errors, 0);
});

t0('the socket has its mode and group; a user without the group is refused at connect, a member may look but not act', async (t) => {
  const GID = 4242; // a group nobody is in
  const h = await withNotify(t, 'tmpfs', { socket: { group: GID, mode: 0o660 } });
  await chmod(h.scratch.base, 0o711); // let other users reach the socket file itself
  const st = await stat(h.socket);
  t.true(st.isSocket());
  t.is(st.mode & 0o777, 0o660);
  t.is(st.gid, GID);
  const probe = `import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused", e.errno); sys.exit(0)
f = s.makefile("rwb")
for op in ("status", "reload"):
    f.write((json.dumps({"v": 1, "id": op, "op": op}) + "\\n").encode()); f.flush()
    r = json.loads(f.readline())
    print(op, "ok" if r["ok"] else r["error"]["code"])`;
  const asNobody = (groups: string) => runChild('setpriv', ['--reuid=nobody', '--regid=nogroup', groups, PYTHON, '-c', probe, h.socket]);
  const outsider = await asNobody('--clear-groups');
  t.is(outsider.stdout.trim(), 'refused 13', outsider.stderr); // EACCES
  const member = await asNobody(`--groups=${GID}`);
  t.is(member.stdout.trim(), 'status ok\nreload EPERM', member.stderr);
  // Root may do both.
  const root = await h.client();
  t.like(await root.request('reload'), { ok: true });
});

t0('blessctl status, stats, top, scan, subscribe, generation bump, reload and wait-ready against a running daemon', async (t) => {
  const h = await withNotify(t, 'ext4', {
    prepare: async (d) => {
      await mkdir(join(d, 'tree/sub'), { recursive: true });
      for (let i = 0; i < 30; i++) await writeFile(join(d, 'tree', `c${i}.txt`), `clean ${i}\n`);
      await writeFile(join(d, 'tree/sub/eicar.com'), EICAR);
    },
  });
  const ctl = (...args: string[]) => runChild(process.execPath, [BLESSCTL, ...args, '--socket', h.socket], { timeoutMs: 30_000 });

  const ready = await ctl('wait-ready', '--timeout', '5s');
  t.is(ready.code, 0, ready.stderr);
  t.regex(ready.stdout, /^ready: blessd pid \d+/);

  const scan = await ctl('scan', join(h.dir, 'tree'));
  t.is(scan.code, 3, scan.stderr);
  t.regex(scan.stdout, /31 files in .*: 30 allowed, 1 denied/);
  t.regex(scan.stdout, /denied .*eicar\.com: signature: Blessd\.Test\.EICAR|denied .*eicar\.com: signature/);
  const again = JSON.parse((await ctl('scan', join(h.dir, 'tree', 'c0.txt'), '--json')).stdout);
  t.like(again, { total: 1, allowed: 1 });

  // The daemon's view of a file's tags (its own key and generations).
  const tags = (await (await h.client()).request('tags', { path: join(h.dir, 'tree/sub/eicar.com') })) as any;
  t.like(tags.tags.find((x: any) => x.scanner === 'signature'), { judgement: 'valid', answer: 'deny', reason: 'Blessd.Test.EICAR' });

  const status = await ctl('status');
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, new RegExp(`${h.dir}\\s+filesystem\\s+read`));
  t.regex(status.stdout, /verdicts: 31 allowed, 1 denied/);
  const statusJson = JSON.parse((await ctl('status', '--json')).stdout);
  t.deepEqual(statusJson.stack.map((e: any) => e.name), ['signature', 'default']);

  const stats = JSON.parse((await ctl('stats', '--json')).stdout);
  t.is(stats.verdicts.deny, 1);
  t.regex((await ctl('stats')).stdout, /^verdicts\.allow 31$/m);
  // The counters move with real accesses: a fresh file read by a child is one forwarded event at least.
  const eventsOf = (x: any) => x.gate.events.openPerm + x.gate.events.preAccess + x.gate.events.openNotice;
  await runChild('sh', ['-c', `echo fresh > ${join(h.dir, 'fresh.txt')}`]);
  t.is((await runChild('cat', [join(h.dir, 'fresh.txt')])).stdout, 'fresh\n');
  const after = JSON.parse((await ctl('stats', '--json')).stdout);
  t.true(eventsOf(after) > eventsOf(stats), `events ${eventsOf(stats)} -> ${eventsOf(after)}`);

  // subscribe --count 1 prints the dirty notice of a write.
  const sub = lineChild(t, process.execPath, [BLESSCTL, 'subscribe', '--json', '--count', '1', '--socket', h.socket]);
  const probe = await h.client();
  await waitFor('blessctl subscribe to be subscribed', async () => ((await probe.request('status')) as any).queues.subscribers.length > 0, 10_000);
  await runChild('sh', ['-c', `echo more >> ${join(h.dir, 'tree', 'c1.txt')}`]);
  const notice = JSON.parse(await sub.waitFor((l) => l.startsWith('{'), 10_000, 'a notice'));
  t.like(notice, { event: 'dirty', path: join(h.dir, 'tree', 'c1.txt') });
  await new Promise<void>((r) => (sub.child.exitCode !== null ? r() : sub.child.on('exit', () => r())));
  t.is(sub.child.exitCode, 0);

  // top: one sample of rates while something happens.
  const busy = (async () => {
    for (let i = 0; i < 10; i++) await appendFile(join(h.dir, 'tree', `c${i}.txt`), 'x\n');
    for (let i = 0; i < 10; i++) await runChild('cat', [join(h.dir, 'tree', `c${i}.txt`)]);
  })();
  const top = await ctl('top', '--interval', '500', '--count', '2', '--json');
  await busy;
  t.is(top.code, 0, top.stderr);
  const rows = top.stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.is(rows.length, 2);
  for (const k of ['eventsPerSec', 'fastPathShare', 'verdictsPerSec', 'scansInFlight', 'pending', 'p99WaitUs']) t.true(k in rows[0], k);

  // generation bump through the daemon: the clean files are rescanned at their next read.
  const scansBefore = h.daemon.stats().scans.signature ?? 0;
  const bump = JSON.parse((await ctl('generation', 'bump', 'signature', '--json')).stdout);
  t.like(bump, { scanner: 'signature', bump: 1, by: 'daemon' });
  t.is((await runChild('cat', [join(h.dir, 'tree', 'c20.txt')])).stdout, 'clean 20\n');
  t.is(h.daemon.stats().scans.signature, scansBefore + 1, 'the blessed file was judged again');

  const reload = await ctl('reload');
  t.is(reload.code, 0, reload.stderr);
  t.regex(reload.stdout, /reloaded; stack: signature:required default:required/);

  // Errors say what to do.
  const none = await runChild(process.execPath, [BLESSCTL, 'status', '--socket', join(h.scratch.base, 'nope.sock')]);
  t.is(none.code, 1);
  t.regex(none.stderr, /no daemon listens on .*nope\.sock/);
  const notReady = await runChild(process.execPath, [BLESSCTL, 'wait-ready', '--timeout', '300ms', '--socket', join(h.scratch.base, 'nope.sock')]);
  t.is(notReady.code, 1);
});
