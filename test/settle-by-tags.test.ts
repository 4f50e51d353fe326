// The JavaScript tag fast path (TagSettler: the crawl, and content stamps, where the native reader does not
// settle): real tags on real files, the daemon's real stack state; the inode services record what they are asked.
// It settles only when the answers decide and no observe scanner still wants the file — otherwise it must say
// false, so that a machine scans what is missing.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config, Control, StackEntry } from '../src/config/types.js';
import { makeLogger } from '../src/daemon/logger.js';
import { DaemonParts } from '../src/daemon/parts.js';
import { TagSettler } from '../src/daemon/settle-by-tags.js';
import { StackState } from '../src/daemon/stack-state.js';
import type { InodeServices } from '../src/inode/services.js';
import type { ScanPool } from '../src/pool/scan-pool.js';
import { isRoot } from './helpers/scratch.js';
import { store, tagScratch, testKey } from './helpers/tag-files.js';

const t0 = isRoot() ? test : test.skip;

const entry = (name: string, control: Control, actor = name, options: Record<string, unknown> = {}): StackEntry =>
  ({ name, control, actor, builtin: true, options, maxSize: 1 << 30, onError: 'deny', onTimeout: 'deny', onTooLarge: 'deny', baseDir: '/', origin: 'test' }) as unknown as StackEntry;
const DEFAULT = entry('default', 'required', 'default', { answer: 'allow' });

async function setup(t: import('ava').ExecutionContext, stack: StackEntry[], stamp: 'mtime' | 'content' = 'mtime') {
  const state = mkdtempSync(join(tmpdir(), 'blessd-settle-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const s = await tagScratch(t, 'ext4');
  const key = testKey();
  const calls: string[] = [];
  const config = { stateDir: state, tags: { stamp } } as unknown as Config;
  const d = new DaemonParts(config, makeLogger('error'), () => {});
  d.tags = store(key);
  d.stack = new StackState({} as ScanPool, d.remote, d.log);
  await d.stack.apply(config, stack, Object.fromEntries(stack.map((e) => [e.name, 'g1'])));
  d.svc = {
    bless: () => calls.push('bless'),
    condemn: () => calls.push('condemn'),
    answer: (w, v) => calls.push(`answer ${w.id} ${v}`),
    logDenied: (x) => calls.push(`logDenied ${x.decidedBy}`),
    notify: (k) => calls.push(`notify ${k}`),
  } as Partial<InodeServices> as InodeServices;
  const tag = async (fd: number, name: string, answer: 'allow' | 'deny' | 'ok') => {
    const lease = d.tags.begin(fd, name, d.stack.generations[name]);
    if (lease.status !== 'leased') throw new Error('no lease');
    await d.tags.finish(fd, name, lease.token, { answer, reason: answer === 'deny' ? 'Bad.Thing' : undefined }, d.stack.generations[name]!);
  };
  return { s, d, calls, tag, settler: new TagSettler(d) };
}

const W = { id: 5, pid: 55, access: 'read' as const };

t0('valid tags that decide: allowed (or denied) at once, nothing left for a machine', async (t) => {
  const { s, calls, tag, settler } = await setup(t, [entry('signature', 'required'), DEFAULT]);
  const good = s.file('good');
  await tag(good.fd, 'signature', 'ok');
  t.true(settler.settle(good.fd, W));
  t.deepEqual(calls, ['bless', 'answer 5 allow', 'notify verdict']);
  calls.length = 0;
  const bad = s.file('bad');
  await tag(bad.fd, 'signature', 'deny');
  t.true(settler.settle(bad.fd, W));
  t.deepEqual(calls, ['condemn', 'answer 5 deny', 'logDenied signature', 'notify verdict']);
});

t0('no answer yet from a scanner that could change the verdict: false, and nobody answered', async (t) => {
  const { s, calls, tag, settler } = await setup(t, [entry('signature', 'required'), entry('yara', 'required'), DEFAULT]);
  const f = s.file('f');
  t.false(settler.settle(f.fd, W), 'no tags at all');
  await tag(f.fd, 'signature', 'ok');
  t.false(settler.settle(f.fd, W), 'yara has not answered and could deny');
  t.deepEqual(calls, []);
});

t0('an observe scanner without an answer still wants the file: false, although the verdict is known', async (t) => {
  const { s, calls, tag, settler } = await setup(t, [entry('signature', 'required'), entry('indexer', 'observe'), DEFAULT]);
  const f = s.file('f');
  await tag(f.fd, 'signature', 'ok');
  t.false(settler.settle(f.fd, W));
  t.deepEqual(calls, []);
  await tag(f.fd, 'indexer', 'ok');
  t.true(settler.settle(f.fd, W));
});

t0('content stamps need a digest: never settled here', async (t) => {
  const { s, calls, tag, settler } = await setup(t, [entry('signature', 'required'), DEFAULT], 'content');
  const f = s.file('f');
  await tag(f.fd, 'signature', 'ok');
  t.false(settler.settle(f.fd, W));
  t.deepEqual(calls, []);
});
