// blessctl as an operator types it, against a running daemon: the small promises of its usage lines.
import test from 'ava';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { EICAR } from '../src/daemon/demo.js';
import { FIXTURES, REPO } from './helpers/daemon-harness.js';
import { lineChild, withNotify } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const BLESSCTL = join(REPO, 'dist/src/cli/blessctl.js');
const t0 = isRoot() ? test.serial : test.skip;

t0('subscribe --count N ends quietly with 0; top takes durations; stats shows percentiles, not buckets', async (t) => {
  const h = await withNotify(t, 'ext4', { prepare: (d) => writeFile(join(d, 'a.txt'), 'a\n') });
  const ctl = (...args: string[]) => runChild(process.execPath, [BLESSCTL, ...args, '--socket', h.socket], { timeoutMs: 30_000 });
  t.is((await runChild('cat', [join(h.dir, 'a.txt')])).stdout, 'a\n');

  // The daemon says when the subscriber is registered (a verdict notice of our own probe read would race).
  const sub = lineChild(t, process.execPath, [BLESSCTL, 'subscribe', '--count', '1', '--socket', h.socket]);
  const probe = await h.client();
  await waitFor('the subscriber to register', async () => ((await probe.request('status')) as { queues: { subscribers: unknown[] } }).queues.subscribers.length > 0);
  await appendFile(join(h.dir, 'a.txt'), 'more\n');
  await sub.waitFor((l) => /dirty\s+.*a\.txt/.test(l), 10_000, 'the dirty notice');
  const code = await within('blessctl subscribe --count 1 to exit', new Promise<number | null>((r) => (sub.child.exitCode !== null ? r(sub.child.exitCode) : sub.child.on('exit', (c) => r(c)))));
  t.is(code, 0);
  t.is(sub.stderr(), '', 'no "the daemon closed the connection" after our own --count end');

  const top = await ctl('top', '--interval', '200ms', '--count', '1', '--json');
  t.is(top.code, 0, top.stderr);
  t.is(top.stdout.trim().split('\n').length, 1);
  t.is((await ctl('top', '--interval', '1s', '--count', '1', '--json')).code, 0);
  const bad = await ctl('top', '--interval', '10ms');
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--interval must be between 100ms and 1h/);

  const stats = (await ctl('stats')).stdout;
  t.regex(stats, /^gate\.latencyUs\.count \d+$/m);
  t.regex(stats, /^gate\.latencyUs\.p99 \d+$/m);
  t.notRegex(stats, /^gate\.latencyUs\.\d+ /m, 'no per-bucket lines');
  const scans = /^scans\.signature (\d+)$/m.exec(stats)?.[1];
  t.truthy(scans, 'a.txt was scanned');
  t.regex(stats, new RegExp(`^scanDurations\\.signature\\.count ${scans}$`, 'm'), 'one duration per scan');
  t.regex(stats, /^scanDurations\.signature\.p99Seconds [\d.]+$/m);
  t.notRegex(stats, /^scanDurations\.signature\.counts\./m, 'no per-bucket lines');
  // One line a counter (about 130 now); the latency histogram alone would add its 240 buckets.
  t.true(stats.split('\n').length < 200, `stats printed ${stats.split('\n').length} lines`);
});

t0('blessctl tags --config reads key, namespace and state dir of a daemon with its own stateDir (valid, not bad-mac)', async (t) => {
  const h = await withNotify(t, 'ext4', { prepare: (d) => writeFile(join(d, 'b.txt'), 'b\n') });
  t.is((await runChild('cat', [join(h.dir, 'b.txt')])).stdout, 'b\n');
  const cfg = join(h.scratch.base, 'blessctl-config.yaml');
  await writeFile(cfg, `stateDir: ${h.state}\ntags: { namespace: ${h.config.tags.namespace} }\nguards: [{ path: ${h.dir} }]\nstack:\n  - actor: default\n    options: { answer: allow }\n`);
  const r = await runChild(process.execPath, [BLESSCTL, 'tags', join(h.dir, 'b.txt'), '--config', cfg, '--json']);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.like(report.tags.find((x: { scanner: string }) => x.scanner === 'signature'), { judgement: 'valid', answer: 'ok' });
  // The same with an explicit key of another daemon: every tag is judged forged.
  const other = join(h.scratch.base, 'other.key');
  await writeFile(other, Buffer.alloc(32, 7), { mode: 0o600 });
  const wrong = JSON.parse((await runChild(process.execPath, [BLESSCTL, 'tags', join(h.dir, 'b.txt'), '--config', cfg, '--key', other, '--json'])).stdout);
  t.like(wrong.tags.find((x: { scanner: string }) => x.scanner === 'signature'), { judgement: 'bad-mac' });
});

t0('blessctl explain names each entry, its answer and source, and the entry and control that decided', async (t) => {
  const h = await withNotify(t, 'ext4', {
    prepare: async (d) => {
      await writeFile(join(d, 'eicar.com'), EICAR);
      await writeFile(join(d, 'fine.txt'), 'fine\n');
      await writeFile(join(d, 'unread.txt'), 'never read\n');
    },
  });
  t.regex((await runChild('cat', [join(h.dir, 'eicar.com')])).stderr, /Operation not permitted/);
  t.is((await runChild('cat', [join(h.dir, 'fine.txt')])).stdout, 'fine\n');
  const ctl = (...args: string[]) => runChild(process.execPath, [BLESSCTL, ...args, '--socket', h.socket], { timeoutMs: 30_000 });

  const bad = await ctl('explain', join(h.dir, 'eicar.com'));
  t.is(bad.code, 3, bad.stderr);
  t.regex(bad.stdout, /^1\s+signature\s+required\s+deny\s+tag\s+valid\s+Blessd\.Test\.EICAR$/m);
  t.regex(bad.stdout, /^2\s+default\s+required\s+allow\s+constant\s+-\s+default$/m);
  t.regex(bad.stdout, /^verdict: deny — decided by signature \(required\): signature \(required\) denied: Blessd\.Test\.EICAR$/m);

  const good = JSON.parse((await ctl('explain', join(h.dir, 'fine.txt'), '--json')).stdout);
  t.like(good, { verdict: 'allow', decidedBy: 'default', decidedByControl: 'required' });
  t.like(good.entries[0], { name: 'signature', answer: 'ok', source: 'tag', tag: { judgement: 'valid' } });

  // Never read: no tag yet, so pending; --scan answers it without writing a tag.
  const unread = JSON.parse((await ctl('explain', join(h.dir, 'unread.txt'), '--json')).stdout);
  t.like(unread, { verdict: 'pending', waitingFor: ['signature'] });
  t.like(unread.entries[0], { source: 'none', tag: null });
  const scanned = JSON.parse((await ctl('explain', join(h.dir, 'unread.txt'), '--scan', '--json')).stdout);
  t.like(scanned, { verdict: 'allow' });
  t.like(scanned.entries[0], { answer: 'ok', source: 'scan' });
  const after = JSON.parse((await ctl('explain', join(h.dir, 'unread.txt'), '--json')).stdout);
  t.like(after.entries[0], { source: 'none', tag: null }, 'explain --scan wrote no tag');

  // The stamp is the file's as it is now.
  t.is(good.stamp.size, '5');
});

t0('blessctl stats --by process|path|uid: who waited, what was scanned and denied, per executable, path and uid', async (t) => {
  const h = await withNotify(t, 'ext4', {
    notices: true,
    prepare: async (d) => {
      await writeFile(join(d, 'eicar.com'), EICAR);
      for (let i = 0; i < 3; i++) await writeFile(join(d, `f${i}.txt`), `f${i}\n`);
    },
  });
  t.regex((await runChild('cat', [join(h.dir, 'eicar.com')])).stderr, /Operation not permitted/);
  for (let i = 0; i < 3; i++) t.is((await runChild('/usr/bin/head', ['-c', '10', join(h.dir, `f${i}.txt`)])).stdout, `f${i}\n`);
  const ctl = (...args: string[]) => runChild(process.execPath, [BLESSCTL, ...args, '--socket', h.socket], { timeoutMs: 30_000 });

  const procs = JSON.parse((await ctl('stats', '--by', 'process', '--json')).stdout) as { key: string; waits: number; denied: number; waitedMs: number; judged: number; scans: number; scanMs: number }[];
  const cat = procs.find((r) => r.key === '/usr/bin/cat');
  const head = procs.find((r) => r.key === '/usr/bin/head');
  t.truthy(cat, JSON.stringify(procs));
  t.truthy(head, JSON.stringify(procs));
  t.true(cat!.denied >= 1 && cat!.waits >= 1);
  t.is(head!.denied, 0);
  t.true(head!.waits >= 3);
  t.true(head!.waitedMs > 0);
  // The files whose verdict a process waited for, and the scans they took, count for it.
  t.like(head, { judged: 3, scans: 3 });
  t.true(head!.scanMs > 0);
  t.like(cat, { judged: 1, scans: 1 });
  t.true(h.notices.length >= 4 && h.notices.every((n) => !('accessors' in n)), 'who waited is not told to subscribers');

  const paths = JSON.parse((await ctl('stats', '--by', 'path', '--top', '50', '--json')).stdout) as { key: string; scans: number; judged: number; denied: number }[];
  t.like(paths.find((r) => r.key === join(h.dir, 'eicar.com')), { scans: 1, judged: 1, denied: 1 });
  for (let i = 0; i < 3; i++) t.like(paths.find((r) => r.key === join(h.dir, `f${i}.txt`)), { scans: 1, judged: 1, denied: 0 });

  const uids = JSON.parse((await ctl('stats', '--by', 'uid', '--json')).stdout) as { key: string; waits: number }[];
  t.true(uids.find((r) => r.key === '0')!.waits >= 4);

  const text = await ctl('stats', '--by', 'process', '--top', '2', '--sort', 'waits');
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^JUDGED\s+SCANS\s+SCAN TIME\s+WAITS\s+WAITED\s+DENIED\s+EXECUTABLE$/m);
  t.is(text.stdout.trim().split('\n').length, 3);
  t.is((await ctl('stats', '--by', 'inode')).code, 2);
});

t0('blessctl top shows, per interval, the processes whose accesses waited for a judgement and were denied', async (t) => {
  // Each scan takes 500 ms: an open notice starts the judgement at once, and without a slow scan it can end before
  // the opener's read arrives — that read then never waits (and is not a row of `top`), which is right but racy here.
  const h = await withNotify(t, 'ext4', {
    stack: `  - actor: ${join(FIXTURES, 'word-actor.js')}
    name: slow
    options: { word: EICAR-STANDARD-ANTIVIRUS-TEST-FILE, ms: 500 }
  - actor: default
    options: { answer: allow }`,
    prepare: async (d) => {
      await writeFile(join(d, 'eicar.com'), EICAR);
      for (let i = 0; i < 3; i++) await writeFile(join(d, `f${i}.txt`), `f${i}\n`);
    },
  });
  const top = lineChild(t, process.execPath, [BLESSCTL, 'top', '--interval', '500ms', '--count', '60', '--top', '3', '--json', '--socket', h.socket]);
  // The first row covers an interval before any access: nobody waited.
  const first = JSON.parse(await top.waitFor(() => true, 15_000, 'the first sample'));
  t.deepEqual(first.processes, []);

  t.regex((await runChild('cat', [join(h.dir, 'eicar.com')])).stderr, /Operation not permitted/);
  for (let i = 0; i < 3; i++) t.is((await runChild('/usr/bin/head', ['-c', '10', join(h.dir, `f${i}.txt`)])).stdout, `f${i}\n`);

  // Every access happened after the first row was printed, so the rows after it hold them all: summed per process.
  type Proc = { exe: string; waits: number; waitedMs: number; denied: number };
  const sum = () => {
    const by = new Map<string, Proc>();
    for (const line of top.lines.slice(1)) {
      for (const p of JSON.parse(line).processes as Proc[]) {
        const q = by.get(p.exe) ?? { exe: p.exe, waits: 0, waitedMs: 0, denied: 0 };
        by.set(p.exe, { exe: p.exe, waits: q.waits + p.waits, waitedMs: q.waitedMs + p.waitedMs, denied: q.denied + p.denied });
      }
    }
    return by;
  };
  await top.waitFor(() => (sum().get('/usr/bin/head')?.waits ?? 0) >= 3 && (sum().get('/usr/bin/cat')?.denied ?? 0) >= 1, 20_000, 'head and cat in the top rows');
  const by = sum();
  t.like(by.get('/usr/bin/cat'), { denied: 1 });
  t.true(by.get('/usr/bin/cat')!.waits >= 1);
  t.like(by.get('/usr/bin/head'), { waits: 3, denied: 0 });
  t.true(by.get('/usr/bin/head')!.waitedMs > 0);
  // At most --top rows per sample, busiest first.
  for (const line of top.lines) {
    const procs = JSON.parse(line).processes as Proc[];
    t.true(procs.length <= 3);
    t.deepEqual(procs.map((p) => p.waits), [...procs.map((p) => p.waits)].sort((a, b) => b - a));
  }
  top.kill();

  // As text: one line per sample, the processes at its end.
  const text = await runChild(process.execPath, [BLESSCTL, 'top', '--interval', '200ms', '--count', '1', '--socket', h.socket], { timeoutMs: 30_000 });
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^EVENTS\/S .* P99 WAIT  TOP PROCESSES \(w: waited, d: denied\)$/m);
  t.is(text.stdout.trim().split('\n').length, 2);
  t.is((await runChild(process.execPath, [BLESSCTL, 'top', '--top', '101', '--socket', h.socket])).code, 2);
});
