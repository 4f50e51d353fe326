// Mount guards and namespaces (issue 9.4): a guard covers every path to its content. A bind mount or the copy of
// a mount that `unshare -Urm` gives any user carries no mount marks; a filesystem mark covers them all. Every
// attack runs as a real unprivileged user (setpriv) against a real daemon on a private ext4 image.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { planGuard } from '../src/gate/gate.js';
import { EICAR } from './helpers/actor-files.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { REPO, withDaemon } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const run = promisify(execFile);
const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('mount guard attack tests skipped: they need root');

const MARKER = 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE';
// Signature (EICAR) plus a word the example actor denies, so that a denied program can be a runnable script.
const STACK = `  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: ${join(REPO, 'dist/actors/examples/deny-word.js')}
    options: { word: DO-NOT-RUN }
  - actor: default
    options: { answer: allow }`;
const PWN = '#!/bin/sh\necho pwned # DO-NOT-RUN\n';

/** A bind mount of `source` made for this test, unmounted (and its mount point removed) at teardown. */
async function bindMount(t: ExecutionContext, source: string): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'blessd-bind-'));
  const target = join(base, 'b');
  await mkdir(target);
  await run('mount', ['--bind', source, target]);
  t.teardown(async () => {
    await run('umount', [target]).catch(() => run('umount', ['-l', target]));
    await rm(base, { recursive: true, force: true });
  });
  await openToEveryone(target);
  return target;
}

async function guardedMount(t: ExecutionContext) {
  const h = await withDaemon(t, 'ext4', {
    kind: 'mount',
    stack: STACK,
    prepare: async (d) => {
      await writeFile(join(d, 'eicar.com'), EICAR, { mode: 0o644 });
      await writeFile(join(d, 'pwn.sh'), PWN, { mode: 0o755 });
    },
  });
  await openToEveryone(h.dir);
  return h;
}

function refused(t: ExecutionContext, r: { code: number | null; stdout: string; stderr: string }, what: string) {
  t.not(r.code, 0, `${what}: exit 0 (${r.stdout}${r.stderr})`);
  t.false(r.stdout.includes(MARKER), `${what}: EICAR came through`);
  t.false(r.stdout.includes('pwned'), `${what}: the denied script ran`);
}

t0('kind: mount on a mount that shows its whole filesystem becomes a filesystem mark', async (t) => {
  const h = await guardedMount(t);
  const plan = planGuard(h.dir, 'mount');
  t.is(plan.covers, 'filesystem');
  t.regex(plan.note ?? '', /every mount, in every namespace/);
  t.like(h.daemon.stats().guards[0], { kind: 'mount', mode: 'read' });
});

t0('a bind mount of a mount guard: denied files are refused, and writes through it are seen', async (t) => {
  const h = await guardedMount(t);
  const a = await makeAttacker(t);
  refused(t, await a.run('cat', [join(h.dir, 'eicar.com')]), 'cat through the guarded mount');
  const bind = await bindMount(t, h.dir);
  refused(t, await a.run('cat', [join(bind, 'eicar.com')]), 'cat through the bind mount');
  refused(t, await a.run(join(bind, 'pwn.sh'), []), 'exec through the bind mount');
  // dash takes a refused read() for the end of its script: exit 0 and nothing run.
  t.false((await a.run('sh', [join(bind, 'pwn.sh')])).stdout.includes('pwned'), 'sh reading the script through the bind mount ran it');

  // The attacker's own file, blessed through the guarded path, then changed through the bind mount.
  const mine = await a.sh(`echo clean > ${h.dir}/mine.txt && cat ${h.dir}/mine.txt`);
  t.is(mine.stdout, 'clean\n', mine.stderr);
  const write = await a.run('sh', ['-c', `cat > ${bind}/mine.txt`], { input: EICAR });
  t.is(write.code, 0, write.stderr);
  refused(t, await a.run('cat', [join(h.dir, 'mine.txt')]), 'cat of a file changed through the bind mount');
  refused(t, await a.run('cat', [join(bind, 'mine.txt')]), 'cat of it through the bind mount');
});

t0('unshare -Urm as an unprivileged user: the mount copy in the new namespace is guarded too', async (t) => {
  const h = await guardedMount(t);
  const a = await makeAttacker(t);
  // Unprivileged user namespaces must be available for this attack to exist at all; say so if they are not.
  const probe = await a.run('unshare', ['-Urm', 'true']);
  if (probe.code !== 0) {
    t.log(`unprivileged user namespaces are disabled here (${probe.stderr.trim()}): the attack is impossible`);
    // Only a refusal by the kernel makes the attack impossible; a missing unshare or any other failure is a failure.
    t.regex(probe.stderr, /Operation not permitted|Permission denied|No space left on device/, 'unshare failed for another reason than a refusal');
    return;
  }
  const ns = (script: string, input?: Buffer) => a.run('unshare', ['-Urm', 'sh', '-c', script], { input });
  const inside = await ns(`id -u; cat ${h.dir}/eicar.com`);
  t.regex(inside.stdout, /^0\n/, 'the attacker is root in its own namespace');
  refused(t, { ...inside, stdout: inside.stdout.replace(/^0\n/, '') }, 'cat in the new namespace');
  refused(t, await ns(`${h.dir}/pwn.sh`), 'exec in the new namespace');
  // A bind mount made inside the namespace, where the attacker may mount: still the same filesystem.
  refused(t, await ns(`mkdir -p /tmp/x-$$ 2>/dev/null; mount --bind ${h.dir} /tmp && cat /tmp/eicar.com`), 'cat through a bind mount made in the namespace');

  const mine = await a.sh(`echo clean > ${h.dir}/ns.txt && cat ${h.dir}/ns.txt`);
  t.is(mine.stdout, 'clean\n', mine.stderr);
  const write = await ns(`cat > ${h.dir}/ns.txt`, EICAR);
  t.is(write.code, 0, write.stderr);
  refused(t, await a.run('cat', [join(h.dir, 'ns.txt')]), 'cat of a file changed from the new namespace');
});

t0('kind: mount on a bind mount of a subdirectory judges that tree by inode, by every path to it', async (t) => {
  const h = await withDaemon(t, 'ext4', {
    stack: STACK,
    kind: 'tree',
    guard: 'unused',
    prepare: async (d) => {
      await mkdir(join(d, 'unused'));
      await mkdir(join(d, 'share'));
      await writeFile(join(d, 'share/eicar.com'), EICAR, { mode: 0o644 });
      await writeFile(join(d, 'elsewhere.txt'), 'not in the share\n', { mode: 0o644 });
    },
  });
  await openToEveryone(h.dir);
  await openToEveryone(join(h.dir, 'share'));
  const share = await bindMount(t, join(h.dir, 'share'));
  const plan = planGuard(share, 'mount');
  t.is(plan.covers, 'tree');
  t.is(plan.root, share);
  t.regex(plan.note ?? '', /shows only \/share of/);
  const mark = await h.daemon['d'].gate.guard(share, 'mount', 'read');
  t.is(mark.root, share);
  const a = await makeAttacker(t);
  refused(t, await a.run('cat', [join(share, 'eicar.com')]), 'cat through the guarded bind mount');
  refused(t, await a.run('cat', [join(h.dir, 'share/eicar.com')]), 'cat through the filesystem\'s own mount');
  const outside = await a.run('cat', [join(h.dir, 'elsewhere.txt')]);
  t.is(outside.stdout, 'not in the share\n', 'a file outside the tree is not held');
});
