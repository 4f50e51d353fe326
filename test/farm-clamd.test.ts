// A scan farm of clamd hosts (actors/clamd/pool.ts): a blessd with no engine of its own, whose stack is a clamd
// entry with `hosts:`, two real clamd processes on TCP, real fanotify on a private ext4 image. Three hosts on a
// private network (test/helpers/netns.ts): the node runs blessd, a and b one clamd each, listening on their own
// addresses. The daemon runs as its own process (its JSON log on a pipe: the farm's host-down / host-up lines are
// the events the test waits on) with one pool thread, so that the round-robin order of its one actor instance is
// known: its first scan goes to the first host.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import clamdActor from '../actors/clamd.js';
import { EICAR } from '../src/daemon/demo.js';
import { runChild, startChild } from './helpers/child.js';
import { haveClamd, startClamd, type Clamd } from './helpers/clamd.js';
import { withDaemonProcess, type DaemonProcess } from './helpers/daemon-process.js';
import { withNet, type NetHost } from './helpers/netns.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, waitHeld, within } from './helpers/wait.js';

const t0 = isRoot() && haveClamd() ? test.serial : test.skip;
if (!isRoot() || !haveClamd()) console.log('farm clamd tests skipped: they need root and /usr/sbin/clamd (apt-get install clamav-daemon)');

const denied = /Operation not permitted/;
// A deny that rests on a failure (timeout, crash, no scanner) is the retryable errno: nothing judged the content.
const retried = /Resource temporarily unavailable/;
const EICAR_SIG = { content: EICAR, name: 'Blessd.Test.EICAR' };

interface FarmHost {
  clamd: Clamd;
  host: NetHost;
}
const where = (h: FarmHost) => `${h.host.addr}:${h.clamd.port}`;

const farmConfig = (hosts: FarmHost[], extra = '') => (dir: string) => `guards: [{ path: ${dir}, kind: filesystem, wait: read }]
gate: { deadline: 20s, settleWalk: { enabled: false } }
pool: { threads: 1, scanTimeout: 15s }
log: { level: info }
stack:
  - actor: clamd
    options: { hosts: [${hosts.map((h) => `"${where(h)}"`).join(', ')}], timeoutMs: 8000, connectTimeoutMs: 2000${extra} }
    onError: deny
    onTimeout: deny
  - actor: default
    options: { answer: allow }
`;

/** INSTREAM scans a clamd has logged (`instream(ADDR@PORT): OK` / `... FOUND`): which host did the work. */
async function streams(c: Clamd): Promise<number> {
  return (await c.logText()).split('\n').filter((l) => /instream\(.*\): .*(OK|FOUND)$/.test(l)).length;
}

/** The farm's log lines about one host in state `state` (`down` / `up`), counted. */
function hostLines(d: DaemonProcess, h: FarmHost, state: 'down' | 'up'): number {
  return d
    .log()
    .split('\n')
    .filter((l) => l.includes(`"msg":"clamd host ${state}"`) && l.includes(`"host":"${where(h)}"`)).length;
}

/** The farm's lines about scans one host failed (each then went to another host). */
function failedScans(d: DaemonProcess, h: FarmHost): number {
  return d
    .log()
    .split('\n')
    .filter((l) => l.includes('"msg":"clamd host failed a scan"') && l.includes(`"host":"${where(h)}"`)).length;
}

async function readAs(path: string) {
  return runChild('cat', [path], { timeoutMs: 30_000 });
}

t0('a farm of two clamd hosts answers for a node with no engine: EICAR denied, clean allowed, both hosts used; a host killed mid-scan → the other answers; down and up by PING; both dead → onError, every access answered', async (t) => {
  const net = await withNet(t, ['node', 'a', 'b']);
  const farmHost = async (name: 'a' | 'b'): Promise<FarmHost> => {
    const host = net.hosts[name]!;
    return { host, clamd: await startClamd(t, [EICAR_SIG], [], { tcpAddr: host.addr, prefix: host.prefix() }) };
  };
  const [fa, fb] = [await farmHost('a'), await farmHost('b')];
  const [a, b] = [fa.clamd, fb.clamd];
  // A slow health check, so that the PINGs do not mark the stopped host down before the first scan reaches it.
  // The files exist before the daemon starts: each is scanned at its first read, not as its writer closes it.
  const d = await withDaemonProcess(t, 'ext4', farmConfig([fa, fb], ', healthIntervalMs: 1500, healthTimeoutMs: 1000, downAfter: 2'), {
    prepare: async (dir) => {
      for (const f of ['mid', 'c1', 'c2', 'c3', 'c4', 'back1', 'back2', 'stop1', 'stop2', 'stop3', 'dead']) await writeFile(join(dir, `${f}.txt`), `clean ${f}\n`);
      await writeFile(join(dir, 'eicar.com'), EICAR);
    },
    prefix: net.hosts['node']!.prefix(),
  });

  // 1. A host dies under its scan: the first scan goes to the first host (a), stopped; killed while the reader
  //    waits, its dropped session moves the scan to b, and the reader gets the content.
  a.signal('SIGSTOP');
  const reader = startChild('cat', [join(d.dir, 'mid.txt')], 30_000);
  await waitHeld(reader.child.pid!, 'cat of mid.txt waiting for its verdict');
  // The scan's INSTREAM (zINSTREAM\0, one chunk of 10 bytes with its length, the end mark: 28 bytes) waits unread in
  // the stopped clamd's socket: the kernel's receive queue on a's side shows it (a PING is 6 bytes).
  await waitFor('the scan of mid.txt to reach the stopped host a (28 bytes unread on its side)', async () => {
    const ss = await fa.host.run('ss', ['-Htn', 'state', 'established', `( sport = :${a.port} )`]);
    return ss.stdout.split('\n').some((l) => Number(l.trim().split(/\s+/).find((w) => /^\d+$/.test(w))) >= 28);
  });
  const bBefore = await streams(b);
  await a.kill('SIGKILL');
  const r = await within('the reader of mid.txt after host a died', reader.done, 15_000);
  t.is(r.stdout, 'clean mid\n', `the other host answers: ${r.stderr}`);
  t.true((await streams(b)) > bBefore, `host b scanned it:\n${(await b.logText()).slice(-1500)}`);
  await waitFor('the farm to log host a down', () => hostLines(d, fa, 'down') >= 1, 10_000);

  // 2. a is down: every scan goes to b, no access waits for a.
  for (const f of ['c1', 'c2', 'c3', 'c4']) t.is((await readAs(join(d.dir, `${f}.txt`))).stdout, `clean ${f}\n`);
  const e = await readAs(join(d.dir, 'eicar.com'));
  t.regex(e.stderr, denied, 'EICAR denied by the farm');
  t.false(e.stdout.includes('EICAR'));

  // 3. a back: its first PONG marks it up, and round-robin gives it scans again.
  await a.start();
  await waitFor('the farm to log host a up', () => hostLines(d, fa, 'up') >= 1, 15_000);
  const [aBefore, bBack] = [await streams(a), await streams(b)];
  for (const f of ['back1', 'back2']) t.is((await readAs(join(d.dir, `${f}.txt`))).stdout, `clean ${f}\n`);
  t.is((await streams(a)) - aBefore, 1, `host a scans again after it came back, one of two (round-robin):\n${d.log().slice(-2000)}`);
  t.is((await streams(b)) - bBack, 1, 'and host b the other');

  // 4. a cut off the network (its link down: no reset, no answer) right after a scan may have gone to it: its
  //    PINGs time out, a is marked down after downAfter of them, its session is dropped and a scan waiting on it
  //    moves to b; later scans go to b at once. Without that, a scan on a would wait for timeoutMs (onTimeout:
  //    deny) and new ones would first wait for connectTimeoutMs.
  const moved = failedScans(d, fa);
  const downs = hostLines(d, fa, 'down');
  await net.setLink('a', false);
  const cut = await Promise.all(['stop1', 'stop2'].map((f) => readAs(join(d.dir, `${f}.txt`))));
  cut.forEach((r, i) => t.is(r.stdout, `clean stop${i + 1}\n`, `stop${i + 1} answered while a is cut off: ${r.stderr}`));
  t.true(hostLines(d, fa, 'down') > downs, 'a marked down by its unanswered PINGs');
  t.true(failedScans(d, fa) > moved, `the scan that waited on a moved to b:\n${d.log().slice(-2000)}`);
  const before3 = failedScans(d, fa);
  const s3 = await readAs(join(d.dir, 'stop3.txt'));
  t.is(s3.stdout, 'clean stop3\n');
  t.is(failedScans(d, fa), before3, 'a scan after a is down goes straight to b (no attempt on a to fail)');
  await net.setLink('a', true);
  const ups = hostLines(d, fa, 'up');
  await waitFor('the farm to log host a up (its link back)', () => hostLines(d, fa, 'up') > ups, 15_000);

  // 5. Both dead: the entry's onError (deny) answers at once, the reader is not left waiting, nothing is served.
  await a.kill('SIGKILL');
  await b.kill('SIGKILL');
  const dead = await within('a read with no farm host alive', readAs(join(d.dir, 'dead.txt')), 20_000);
  t.regex(dead.stderr, retried, 'no farm host → onError: deny, retryable');
  t.is(dead.stdout, '');
  t.regex(d.log(), /clamd farm/, 'the failure names the farm');
  const status = await d.ctl(['status', '--json'], 15_000);
  t.is(status.code, 0, `the daemon still answers: ${status.stderr}`);
  t.is(await d.stop(), 0);
});

test('farm options: each mistake names the option', async (t) => {
  const init = async (options: Record<string, unknown>) => clamdActor.init(options, { name: 'clamd' });
  await t.throwsAsync(init({ hosts: [] }), { message: /options\.hosts must be a non-empty list of HOST:PORT/ });
  await t.throwsAsync(init({ hosts: ['10.0.0.5:3310', 'clamd-b'] }), { message: /options\.hosts\[1\] must be HOST:PORT .*"clamd-b"/ });
  await t.throwsAsync(init({ hosts: ['10.0.0.5:70000'] }), { message: /options\.hosts\[0\] must be HOST:PORT/ });
  await t.throwsAsync(init({ hosts: ['10.0.0.5:3310', '10.0.0.5:3310'] }), { message: /options\.hosts\[1\]: 10\.0\.0\.5:3310 is listed twice/ });
  await t.throwsAsync(init({ hosts: ['10.0.0.5:3310'], host: '10.0.0.6', port: 3310 }), { message: /options\.hosts excludes options\.socket and options\.host\/port/ });
  await t.throwsAsync(init({ host: '10.0.0.6', port: 3310, downAfter: 3 }), { message: /options\.downAfter applies to options\.hosts/ });
  await t.throwsAsync(init({ hosts: ['[fd00::5]:3310'], downAfter: 0 }), { message: /options\.downAfter must be a positive integer/ });
});
