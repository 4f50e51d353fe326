// The tripwire: `blessctl baseline` records a tree, the integrity actor in a real daemon allows what matches,
// denies what changed (naming both digests), says nothing of files it does not know; `blessctl baseline --watch`
// hears a baselined file go dirty; `--update` accepts a change (from the daemon's own tag when the gate refuses the
// read) and the refreshed baseline lets it through. An unprivileged user who owns a baselined file cannot get
// changed content read: not in place, not through a hard link, not renamed over it.
import test from 'ava';
import { createHash } from 'node:crypto';
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { runChild } from './helpers/child.js';
import { REPO, withDaemon } from './helpers/daemon-harness.js';
import { lineChild, withNotify } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const BLESSCTL = join(REPO, 'dist/src/cli/blessctl.js');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const blessctl = (args: string[]) => runChild('node', [BLESSCTL, ...args], { timeoutMs: 30_000 });
const DENIED = /Operation not permitted/;

async function baselineDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'blessd-baseline-'));
  t.teardown(() => rm(d, { recursive: true, force: true }));
  return d;
}

test('ext4: a baselined file that changed is denied with both digests, the watcher hears it, --update accepts it', async (t) => {
  if (!isRoot()) return t.pass('needs root (fanotify, scratch mounts)');
  const b = await baselineDir(t);
  const baseline = join(b, 'baseline');
  const h = await withNotify(t, 'ext4', {
    notices: true,
    stack: `  - actor: integrity
    options: { baseline: ${baseline}, refreshMs: 200 }
  - actor: default
    options: { answer: allow }`,
    async prepare(dir) {
      mkdirSync(join(dir, 'etc'));
      writeFileSync(join(dir, 'etc/app.conf'), 'setting=1\n');
      writeFileSync(join(dir, 'etc/other.conf'), 'other\n');
      const r = await blessctl(['baseline', '--baseline', baseline, dir]);
      if (r.code !== 0) throw new Error(`blessctl baseline: ${r.stderr}`);
      if (!/: 2 files \(2 added, 0 changed, 0 unchanged, 0 removed\)/.test(r.stdout)) throw new Error(r.stdout);
    },
  });
  const socket = h.config.socket.path;
  const conf = join(h.dir, 'etc/app.conf');
  t.regex(readFileSync(baseline, 'utf8'), new RegExp(`^${sha('setting=1\n')} 10 \\d+:\\d+ ${conf}$`, 'm'));

  const watcher = lineChild(t, 'node', [BLESSCTL, 'baseline', '--watch', '--baseline', baseline, '--socket', socket, '--count', '1']);
  await watcher.waitFor((l) => l.startsWith('watching 2 baselined files'), 15_000, 'the watcher subscribed');
  const changed = watcher.waitFor((l) => l.includes('CHANGED'), 15_000, 'a CHANGED line');

  t.is((await runChild('cat', [conf])).stdout, 'setting=1\n');
  writeFileSync(join(h.dir, 'new.txt'), 'not baselined\n');
  t.is((await runChild('cat', [join(h.dir, 'new.txt')])).stdout, 'not baselined\n');

  writeFileSync(conf, 'setting=2 evil\n'); // root's own writes pass; the next read is judged again
  t.regex(await changed, new RegExp(`CHANGED ${conf}  baseline sha256 ${sha('setting=1\n')}`));
  const r = await runChild('cat', [conf]);
  t.regex(r.stderr, DENIED);
  t.is(r.stdout, '');
  const deny = h.notices.find((n) => n.event === 'verdict' && n['verdict'] === 'deny' && n['path'] === conf);
  t.is(deny?.['reason'], `integrity (required) denied: was not supposed to change: sha256 ${sha('setting=1\n')} in the baseline, now ${sha('setting=2 evil\n')}`);

  // Accepting the change: the gate refuses blessctl's read, so the digest comes from the daemon's valid tag.
  const up = await blessctl(['baseline', '--update', '--baseline', baseline, '--socket', socket, join(h.dir, 'etc')]);
  t.is(up.code, 0, up.stderr);
  t.regex(up.stdout, /: 2 files \(0 added, 1 changed, 1 unchanged, 0 removed\)/);
  t.regex(up.stdout, /app\.conf: recorded from the daemon's integrity tag/);
  t.regex(readFileSync(baseline, 'utf8'), new RegExp(`^${sha('setting=2 evil\n')} 15 \\d+:\\d+ ${conf}$`, 'm'));
  // The actor looks at its baseline every refreshMs: a new one is a new generation, and the file is judged again.
  await waitFor('the updated baseline to let the accepted content through', async () => (await runChild('cat', [conf])).stdout === 'setting=2 evil\n', 15_000, 100);
  t.pass();
});

test('ext4: an unprivileged owner of a baselined file cannot get changed content read — in place, by a hard link, renamed over', async (t) => {
  if (!isRoot()) return t.pass('needs root (fanotify, scratch mounts, users)');
  const atk = await makeAttacker(t, 'trip');
  const b = await baselineDir(t);
  const baseline = join(b, 'baseline');
  const h = await withDaemon(t, 'ext4', {
    notices: true,
    stack: `  - actor: integrity
    options: { baseline: ${baseline}, refreshMs: 0 }
  - actor: default
    options: { answer: allow }`,
    async prepare(dir) {
      await openToEveryone(dir);
      for (const sub of ['app', 'spare']) {
        mkdirSync(join(dir, sub));
        chownSync(join(dir, sub), atk.uid, atk.gid);
      }
      for (const f of ['run.sh', 'lib.sh', 'moved.sh']) {
        writeFileSync(join(dir, 'app', f), `echo ${f}\n`);
        chownSync(join(dir, 'app', f), atk.uid, atk.gid);
      }
      const r = await blessctl(['baseline', '--baseline', baseline, join(dir, 'app')]);
      if (r.code !== 0) throw new Error(`blessctl baseline: ${r.stderr}`);
    },
  });
  const app = join(h.dir, 'app');
  t.is((await atk.run('cat', [join(app, 'run.sh')])).stdout, 'echo run.sh\n');

  // In place: the owner rewrites it and reads it back.
  const inPlace = await atk.sh(`printf 'echo pwned\\n' > ${app}/run.sh; cat ${app}/run.sh`);
  t.regex(inPlace.stderr, DENIED);
  t.notRegex(inPlace.stdout, /pwned/);

  // A hard link elsewhere, changed and read first through the link: the verdict is per inode, and the link is
  // found by the dev:ino the baseline recorded.
  const linked = await atk.sh(`ln ${app}/lib.sh ${h.dir}/spare/x && printf 'echo pwned\\n' > ${h.dir}/spare/x; cat ${h.dir}/spare/x`);
  t.regex(linked.stderr, DENIED);
  t.notRegex(linked.stdout, /pwned/);
  const viaPath = await runChild('cat', [join(app, 'lib.sh')]);
  t.regex(viaPath.stderr, DENIED);

  // Renamed over: a new inode at the baselined path.
  const renamed = await atk.sh(`printf 'echo pwned\\n' > ${app}/.new && mv -f ${app}/.new ${app}/moved.sh; cat ${app}/moved.sh`);
  t.regex(renamed.stderr, DENIED);
  t.notRegex(renamed.stdout, /pwned/);
  const reasons = h.notices.filter((n) => n.event === 'verdict' && n['verdict'] === 'deny').map((n) => String(n['reason']));
  t.true(reasons.some((r) => r.includes('(a hard link of ') && r.includes('lib.sh')), reasons.join('\n'));
});

test('blessctl baseline refuses to overwrite without --update, and a broken baseline is named file:line at load', async (t) => {
  const b = await baselineDir(t);
  const baseline = join(b, 'baseline');
  mkdirSync(join(b, 'tree'));
  writeFileSync(join(b, 'tree/a'), 'a\n');
  t.is((await blessctl(['baseline', '--baseline', baseline, join(b, 'tree')])).code, 0);
  const again = await blessctl(['baseline', '--baseline', baseline, join(b, 'tree')]);
  t.is(again.code, 1);
  t.regex(again.stderr, /exists: use --update/);
  writeFileSync(baseline, readFileSync(baseline, 'utf8') + 'nonsense line\n');
  const { default: integrity } = await import('../actors/integrity.js');
  await t.throwsAsync(async () => integrity.init({ baseline, refreshMs: 0 }), { message: `${baseline}:3: expected "<sha256> <size> <dev>:<ino> <absolute path>"` });
});
