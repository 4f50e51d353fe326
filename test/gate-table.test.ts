// The native verdict table under growth and restarts: sweeps drop Allowed entries (their ignore mark keeps the
// kernel silent) but never a deny; forgetting everything flushes the marks of swept entries too; a file settled by
// its tags on the reader thread costs one event (its mark is in place before the first read is answered); and a writer
// still passes a file whose tags say deny.
import test, { type ExecutionContext } from 'ava';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Gate } from '../src/gate/gate.js';
import { FAN_ALLOW, denyErrno, type GateEvent, type GateOptions } from '../src/gate/types.js';
import { makeScratch, isRoot, type Scratch, type ScratchKind } from './helpers/scratch.js';
import { runChild } from './helpers/child.js';
import { taggedPolicy, writeTagged } from './helpers/tag-files.js';

const t0 = isRoot() ? test.serial : test.skip;
const EPERM = denyErrno('EPERM');

/** A gate on a fresh scratch filesystem, closed and unmounted at teardown (also on failure). */
async function gateOn(t: ExecutionContext, kind: ScratchKind, opts: Partial<GateOptions>, onEvent: (e: GateEvent, gate: Gate) => void, prepare: (dir: string) => void | Promise<void>) {
  const scratch: Scratch = await makeScratch(kind, 32);
  await prepare(scratch.dir);
  const events: GateEvent[] = [];
  const gate: Gate = new Gate({
    deadlineMs: 15_000,
    deadlineAnswer: 'deny',
    ...opts,
    onEvents: (batch) => {
      for (const e of batch) {
        events.push(e);
        onEvent(e, gate);
      }
    },
  });
  t.teardown(async () => {
    gate.close();
    await scratch.cleanup();
  });
  const mark = await gate.guard(scratch.dir, 'filesystem', 'read');
  return { gate, scratch, events, mode: mark.mode };
}

/** One python process reads every file; prints "ok <n>" or "refused <n>" per file, in order. */
async function readAll(files: string[]): Promise<string[]> {
  const py = `import sys\nfor p in sys.argv[1:]:\n  try:\n    with open(p,'rb') as f: f.read()\n    print('ok', flush=True)\n  except OSError as e:\n    print('refused', e.errno, flush=True)`;
  const r = await runChild('python3', ['-c', py, ...files], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`reader failed: ${r.stderr}`);
  return r.stdout.trim().split('\n');
}

const inodeOf = (e: GateEvent) => `${e.dev}:${e.ino}`;

for (const kind of ['ext4', 'tmpfs'] as const) {
  t0(`${kind}: sweeps of the verdict table drop allowed entries, never a deny`, async (t) => {
    // JS judges each inode once, as a daemon whose deny could not be written as a tag: the native table is all that
    // remembers it. A later event of a judged inode means the table forgot it; it is answered allow, so that a
    // deny lost to a sweep shows as content served.
    const judged = new Map<string, 'deny' | 'allow'>();
    let asksAgain = 0;
    const inodes = new Map<string, string>();
    const names = [...Array.from({ length: 3 }, (_, i) => `deny${i}`), ...Array.from({ length: 40 }, (_, i) => `ok${i}`)];
    const h = await gateOn(
      t,
      kind,
      { maxAllowedEntries: 4 },
      (e, gate) => {
        if (e.kind !== 'perm') return;
        const key = inodeOf(e);
        if (judged.has(key)) {
          asksAgain++;
          return void gate.native.answer(e.id, FAN_ALLOW);
        }
        const bad = names.some((n) => n.startsWith('deny') && inodes.get(n) === key);
        judged.set(key, bad ? 'deny' : 'allow');
        if (bad) gate.native.condemn(e.fd, EPERM);
        else gate.native.bless(e.fd);
        gate.native.answer(e.id, bad ? EPERM : FAN_ALLOW);
      },
      (dir) => {
        for (const n of names) writeFileSync(join(dir, n), n.startsWith('deny') ? 'X5O!P%@AP not this\n' : `clean ${n}\n`);
      },
    );
    for (const n of names) {
      const st = statSync(join(h.scratch.dir, n));
      inodes.set(n, `${st.dev}:${st.ino}`);
    }
    const paths = names.map((n) => join(h.scratch.dir, n));
    const denyPaths = paths.slice(0, 3);
    // The denies first, then forty allowed files: the table passes its cap of 4 allowed entries ten times over.
    t.deepEqual(await readAll(denyPaths), ['refused 1', 'refused 1', 'refused 1']);
    const first = await readAll(paths.slice(3));
    t.true(first.every((l) => l === 'ok'), first.join(','));
    const s = h.gate.native.stats();
    t.true(s.verdictTableSweeps >= 5, `sweeps: ${s.verdictTableSweeps}`);
    t.true(s.verdictTableSwept >= 30, `swept: ${s.verdictTableSwept}`);
    t.true(s.verdictTableSize <= 3 + 8, `table kept ${s.verdictTableSize} entries`);
    // The denies are still known, on the native thread, without asking JS: refused at open, never served.
    for (let round = 0; round < 3; round++) t.deepEqual(await readAll(denyPaths), ['refused 1', 'refused 1', 'refused 1']);
    t.is(asksAgain, 0, 'JS was never asked about a judged inode again');
    t.true(h.gate.native.stats().fastDenied >= 9);
  });
}

t0('ext4: swept allowed files stay silent by their ignore marks, and forgetAll clears those marks too', async (t) => {
  const names = Array.from({ length: 30 }, (_, i) => `f${i}`);
  const h = await gateOn(
    t,
    'ext4',
    { maxAllowedEntries: 4 },
    (e, gate) => {
      if (e.kind !== 'perm') return;
      gate.native.bless(e.fd);
      gate.native.answer(e.id, FAN_ALLOW);
    },
    (dir) => {
      for (const n of names) writeFileSync(join(dir, n), `clean ${n}\n`);
    },
  );
  const paths = names.map((n) => join(h.scratch.dir, n));
  t.true((await readAll(paths)).every((l) => l === 'ok'));
  const perms = () => h.events.filter((e) => e.kind === 'perm').length;
  const afterFirst = perms();
  t.true(afterFirst >= 30);
  t.true(h.gate.native.stats().verdictTableSwept >= 20);
  // Swept or not, every file is silent: the kernel answers from its ignore marks, nobody asks the table.
  const fastBefore = h.gate.native.stats().fastAllowed;
  t.true((await readAll(paths)).every((l) => l === 'ok'));
  t.is(perms(), afterFirst, 'no event for any blessed file, swept or kept');
  t.is(h.gate.native.stats().fastAllowed, fastBefore);
  // Forget everything (what an overflow or a generation bump does): the marks of swept entries go too.
  t.true(await h.gate.forgetAll());
  t.like(h.gate.native.stats(), { marksForgotten: 30, ignoreMarkFlushes: 0 }, 'every mark forgotten in place, none flushed');
  t.true((await readAll(paths)).every((l) => l === 'ok'));
  const asked = new Set(h.events.slice(afterFirst).filter((e) => e.kind === 'perm').map(inodeOf));
  t.is(asked.size, 30, `every file asked again after forgetAll (${asked.size} of 30)`);
});


t0('ext4: a file settled by its tags costs one event: its ignore mark is in place before its first read is answered', async (t) => {
  const key = randomBytes(32);
  const names = Array.from({ length: 200 }, (_, i) => `t${i}`);
  const h = await gateOn(
    t,
    'ext4',
    {},
    (e, gate) => {
      if (e.kind === 'perm') gate.native.answer(e.id, EPERM); // JS is not meant to be asked at all
    },
    (dir) => writeTagged(dir, names, key, 'ok'),
  );
  h.gate.native.setTagPolicy(taggedPolicy(key, EPERM));
  const out = await readAll(names.map((n) => join(h.scratch.dir, n)));
  t.true(out.every((l) => l === 'ok'), out.filter((l) => l !== 'ok').join(','));
  const s = h.gate.native.stats();
  t.is(s.fastTagsAllowed, 200, 'every file settled on the reader thread');
  t.is(s.forwarded, 0, 'none reached JS');
  t.is(s.events.openPerm, 0, 'read mode: opens raise no event');
  t.is(s.events.preAccess, 200, 'one event per file, its first read: no later read raced the ignore mark');
});

t0('tmpfs (open mode): a writer opens a file whose tags say deny; a reader is refused', async (t) => {
  const key = randomBytes(32);
  const h = await gateOn(
    t,
    'tmpfs',
    {},
    (e, gate) => {
      if (e.kind === 'settled') gate.native.release(e.fd);
      if (e.kind === 'perm') gate.native.answer(e.id, EPERM);
    },
    (dir) => writeTagged(dir, ['bad'], key, 'deny'),
  );
  t.is(h.mode, 'open');
  h.gate.native.setTagPolicy(taggedPolicy(key, EPERM));
  const file = join(h.scratch.dir, 'bad');
  // The writer first, so that its open meets the tags and not a deny the table already holds.
  const py = `import os,sys\ntry:\n  fd=os.open(sys.argv[1], os.O_WRONLY); os.close(fd); print('write-open ok')\nexcept OSError as e: print('write-open refused', e.errno)\ntry:\n  os.close(os.open(sys.argv[1], os.O_RDONLY)); print('read-open ok')\nexcept OSError as e: print('read-open refused', e.errno)`;
  const r = await runChild('python3', ['-c', py, file]);
  t.is(r.stdout.trim(), 'write-open ok\nread-open refused 1', r.stderr);
  t.is(h.gate.native.stats().fastTagsDenied, 1);
  t.true(h.gate.native.stats().fastWriter >= 1);
});
