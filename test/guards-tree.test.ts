// Tree guards (issue 9.5): every path to the content of a tree is covered. A tree guard is one filesystem mark,
// so new, renamed-in and bind-mounted directories are never unmarked; what the tree decides is which inodes need
// judging, by inode: a file linked into the tree (or carrying a verdict) is judged wherever it is reached from.
// Every attack runs as a real unprivileged user against a real daemon on a private ext4 image; the guarded tree is
// <mount>/tree, and <mount>/out is outside it, on the same filesystem.
import test, { type ExecutionContext } from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from './helpers/actor-files.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { isRoot, makeScratch } from './helpers/scratch.js';
import { Gate } from '../src/gate/gate.js';
import { FAN_DENY, type GateEvent } from '../src/gate/types.js';

const t0 = isRoot() ? test.serial : test.skip;
if (!isRoot()) console.log('tree guard attack tests skipped: they need root');

const MARKER = 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE';
const E = EICAR.toString('latin1').replace(/[\\$"`]/g, (c) => `\\${c}`); // for printf "%s" "..." in sh

async function guardedTree(t: ExecutionContext) {
  const h = await withDaemon(t, 'ext4', {
    kind: 'tree',
    guard: 'tree',
    prepare: async (d) => {
      await mkdir(join(d, 'tree'));
      await mkdir(join(d, 'out'));
    },
  });
  await openToEveryone(join(h.dir, 'tree'));
  await openToEveryone(join(h.dir, 'out'));
  return { h, tree: join(h.dir, 'tree'), out: join(h.dir, 'out'), a: await makeAttacker(t) };
}

function noEicar(t: ExecutionContext, r: { code: number | null; stdout: string; stderr: string }, what: string) {
  t.false(r.stdout.includes(MARKER), `${what}: EICAR came through`);
}

t0('a file made in a new directory of the tree and read at once is judged', async (t) => {
  const { tree, a } = await guardedTree(t);
  // One shell, no pause between mkdir, write and read: nothing may have had time to mark the new directories.
  const script = Array.from({ length: 20 }, (_, i) => `mkdir -p ${tree}/n${i}/deep && printf "%s" "${E}" > ${tree}/n${i}/deep/e.com && cat ${tree}/n${i}/deep/e.com`).join('; ');
  const r = await a.sh(script, { timeoutMs: 60_000 });
  noEicar(t, r, 'files in new directories');
  t.is((r.stderr.match(/not permitted/g) ?? []).length, 20, r.stderr);
});

t0('a directory built outside the tree and renamed in is judged, though it was read outside first', async (t) => {
  const { h, tree, out, a } = await guardedTree(t);
  const built = await a.sh(`mkdir -p ${out}/kit/sub && printf "%s" "${E}" > ${out}/kit/sub/e.com && cat ${out}/kit/sub/e.com`);
  t.true(built.stdout.includes(MARKER), `outside the tree nothing is judged: ${built.stderr}`);
  t.true(h.daemon['d'].gate.native.stats().trees.outside >= 1);
  const moved = await a.sh(`mv ${out}/kit ${tree}/kit && cat ${tree}/kit/sub/e.com`);
  noEicar(t, moved, 'a directory renamed into the tree');
  t.regex(moved.stderr, /not permitted/);
  // A single file moved in, after it was read outside (and got its "outside" ignore mark).
  const script = Array.from({ length: 10 }, (_, i) => `printf "%s" "${E}" > ${out}/f${i}.com && cat ${out}/f${i}.com >/dev/null && mv ${out}/f${i}.com ${tree}/f${i}.com && cat ${tree}/f${i}.com`).join('; ');
  const file = await a.sh(script, { timeoutMs: 60_000 });
  noEicar(t, file, 'a file renamed into the tree');
  t.is((file.stderr.match(/not permitted/g) ?? []).length, 10, file.stderr);
});

t0('a file hard-linked into the tree from outside is judged', async (t) => {
  const { tree, out, a } = await guardedTree(t);
  // Read outside first (the inode gets its "outside" ignore mark), then link and read at once, 10 times over.
  const script = Array.from({ length: 10 }, (_, i) => `printf "%s" "${E}" > ${out}/l${i}.com && cat ${out}/l${i}.com >/dev/null && ln ${out}/l${i}.com ${tree}/l${i}.com && cat ${tree}/l${i}.com`).join('; ');
  const r = await a.sh(script, { timeoutMs: 60_000 });
  noEicar(t, r, 'cat of the link in the tree');
  t.is((r.stderr.match(/not permitted/g) ?? []).length, 10, r.stderr);
  await a.sh(`printf "%s" "${E}" > ${out}/l.com && ln ${out}/l.com ${tree}/l.com`);
  noEicar(t, await a.run('cat', [join(out, 'l.com')]), 'cat of the outside name once it is linked into the tree');
});

t0('denied content hard-linked or moved out of the tree stays denied outside, also after a restart', async (t) => {
  const { h, tree, out, a } = await guardedTree(t);
  const made = await a.sh(`printf "%s" "${E}" > ${tree}/x.com && printf "%s" "${E}" > ${tree}/y.com && cat ${tree}/x.com; cat ${tree}/y.com`);
  noEicar(t, made, 'cat in the tree');
  const link = await a.sh(`ln ${tree}/x.com ${out}/x.com && cat ${out}/x.com`);
  noEicar(t, link, 'cat of a hard link outside the tree');
  t.regex(link.stderr, /not permitted/);
  const move = await a.sh(`mv ${tree}/y.com ${out}/y.com && cat ${out}/y.com`);
  noEicar(t, move, 'cat after a move out of the tree');
  t.regex(move.stderr, /not permitted/);
  await h.restart();
  noEicar(t, await a.run('cat', [join(out, 'y.com')]), 'cat of the moved-out file after a restart (its deny tag is on the inode)');
  noEicar(t, await a.run('cat', [join(out, 'x.com')]), 'cat of the linked-out file after a restart');
});

t0('a write through a hard link outside the tree is seen: the tree path serves no new content unjudged', async (t) => {
  const { tree, out, a } = await guardedTree(t);
  const blessed = await a.sh(`echo clean > ${tree}/ok.txt && cat ${tree}/ok.txt && ln ${tree}/ok.txt ${out}/ok.txt`);
  t.is(blessed.stdout, 'clean\n', blessed.stderr);
  const w = await a.run('sh', ['-c', `cat > ${out}/ok.txt`], { input: EICAR });
  t.is(w.code, 0, w.stderr);
  const r = await a.run('cat', [join(tree, 'ok.txt')]);
  noEicar(t, r, 'cat in the tree after a write through the outside link');
  t.regex(r.stderr, /not permitted/);
});

t0('files outside the tree pass on the native thread: after the first check, only the open asks (the checkpoint)', async (t) => {
  const { h, out, a } = await guardedTree(t);
  await writeFile(join(out, 'plain.txt'), 'plain\n', { mode: 0o644 });
  const gate = h.daemon['d'].gate.native;
  const forwarded = gate.stats().forwarded;
  t.is((await a.run('cat', [join(out, 'plain.txt')])).stdout, 'plain\n');
  const first = gate.stats();
  t.true(first.trees.outside + first.trees.fastOutside >= 1, 'answered as outside on the native thread');
  for (let i = 0; i < 3; i++) t.is((await a.run('cat', [join(out, 'plain.txt')])).stdout, 'plain\n');
  const after = gate.stats();
  t.is(after.events.preAccess, first.events.preAccess, 'the ignore mark silences reads');
  t.is(after.events.openNotice, first.events.openNotice, 'the ignore mark silences open notices');
  t.is(after.events.openPerm - first.events.openPerm, 3, 'each open is the checkpoint, answered on the native thread');
  t.is(after.forwarded, forwarded, 'nothing outside the tree reached JS');
  t.log(`outside check: ${(after.trees.checkNs / Math.max(1, after.trees.checks) / 1000).toFixed(1)} µs mean over ${after.trees.checks} checks`);
});

t0('the open is the checkpoint: a file linked or moved into the tree is judged before any change record is read', async (t) => {
  // No change group at all: the only thing that can notice the link or move is the open through the tree.
  const scratch = await makeScratch('ext4');
  t.teardown(() => scratch.cleanup());
  const tree = join(scratch.dir, 'tree');
  const out = join(scratch.dir, 'out');
  await mkdir(tree);
  await mkdir(out);
  await openToEveryone(tree);
  await openToEveryone(out);
  const judged: GateEvent[] = [];
  const gate: Gate = new Gate({
    changes: false,
    deadlineMs: 10_000,
    onEvents: (batch) => {
      for (const e of batch) {
        if (e.kind === 'perm') {
          judged.push(e);
          gate.native.answer(e.id, FAN_DENY); // everything inside the tree is "denied" here
        }
      }
    },
  });
  t.teardown(() => gate.close());
  await gate.guard(tree, 'tree', 'read');
  const a = await makeAttacker(t);
  const seen = await a.sh(`printf "%s" "${E}" > ${out}/c.com && cat ${out}/c.com`);
  t.true(seen.stdout.includes(MARKER), `outside the tree: not judged (${seen.stderr})`);
  t.is(judged.length, 0);
  noEicar(t, await a.sh(`ln ${out}/c.com ${tree}/c.com && cat ${tree}/c.com`), 'a hard link into the tree');
  noEicar(t, await a.sh(`printf "%s" "${E}" > ${out}/d.com && cat ${out}/d.com >/dev/null && mv ${out}/d.com ${tree}/d.com && cat ${tree}/d.com`), 'a move into the tree');
  noEicar(t, await a.sh(`mkdir ${out}/k && printf "%s" "${E}" > ${out}/k/e.com && cat ${out}/k/e.com >/dev/null && mv ${out}/k ${tree}/k && cat ${tree}/k/e.com`), 'a directory moved into the tree');
  t.true(judged.length >= 3, `${judged.length} accesses judged`);
  t.true(gate.native.stats().trees.relinkedAtOpen >= 3);
});
