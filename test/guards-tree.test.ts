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
import { isRoot } from './helpers/scratch.js';

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
  t.true(h.daemon['gate'].native.stats().trees.outside >= 1);
  const moved = await a.sh(`mv ${out}/kit ${tree}/kit && cat ${tree}/kit/sub/e.com`);
  noEicar(t, moved, 'a directory renamed into the tree');
  t.regex(moved.stderr, /not permitted/);
  // A single file moved in, after it was read outside (and got its "outside" ignore mark).
  const file = await a.sh(`printf "%s" "${E}" > ${out}/f.com && cat ${out}/f.com >/dev/null && mv ${out}/f.com ${tree}/f.com && cat ${tree}/f.com`);
  noEicar(t, file, 'a file renamed into the tree');
  t.regex(file.stderr, /not permitted/);
});

t0('a file hard-linked into the tree from outside is judged', async (t) => {
  const { tree, out, a } = await guardedTree(t);
  const r = await a.sh(`printf "%s" "${E}" > ${out}/l.com && cat ${out}/l.com >/dev/null && ln ${out}/l.com ${tree}/l.com && cat ${tree}/l.com`);
  noEicar(t, r, 'cat of the link in the tree');
  t.regex(r.stderr, /not permitted/);
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

t0('files outside the tree pass on the native thread and are then left to the kernel (one check per inode)', async (t) => {
  const { h, out, a } = await guardedTree(t);
  await writeFile(join(out, 'plain.txt'), 'plain\n', { mode: 0o644 });
  const gate = h.daemon['gate'].native;
  const events = () => Object.values(gate.stats().events).reduce((x, y) => x + y, 0) - gate.stats().events.change;
  const forwarded = gate.stats().forwarded;
  t.is((await a.run('cat', [join(out, 'plain.txt')])).stdout, 'plain\n');
  const first = gate.stats();
  t.true(first.trees.outside + first.trees.fastOutside >= 1, 'answered as outside on the native thread');
  const seen = events();
  for (let i = 0; i < 3; i++) t.is((await a.run('cat', [join(out, 'plain.txt')])).stdout, 'plain\n');
  t.is(events(), seen, 'the ignore mark silences every later access');
  const after = gate.stats();
  t.is(after.forwarded, forwarded, 'nothing outside the tree reached JS');
  t.log(`outside check: ${(after.trees.checkNs / Math.max(1, after.trees.checks) / 1000).toFixed(1)} µs mean over ${after.trees.checks} checks`);
});
