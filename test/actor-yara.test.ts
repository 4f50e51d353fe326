// The yara actor (YARA-X, WebAssembly) behind the real gate on a private mount: real rules compiled by the real
// engine, real files read by child processes.
import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Notice } from '../src/daemon/daemon.js';
import { runChild } from './helpers/child.js';
import { REPO, withDaemon, type DaemonHarness } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;
const denied = /Operation not permitted/;
// A deny that rests on a failure (timeout, crash, no scanner) is the retryable errno: nothing judged the content.
const retried = /Resource temporarily unavailable/;

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-yara-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function verdictFor(h: DaemonHarness, path: string, timeoutMs = 10_000): Promise<Notice> {
  const hit = [...h.notices].reverse().find((n) => n.event === 'verdict' && n['path'] === path);
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no verdict for ${path} within ${timeoutMs} ms`)), timeoutMs);
    const on = (n: Notice) => {
      if (n.event !== 'verdict' || n['path'] !== path) return;
      clearTimeout(timer);
      h.daemon.off('notice', on);
      resolve(n);
    };
    h.daemon.on('notice', on);
  });
}

const MARKER_RULE = `rule evil_marker {
  strings:
    $m = "EVIL-MARKER"
  condition:
    $m
}
`;
// Slow only for files that start with "SLOW": 64 Ki × 64 Ki iterations, far past any deadline.
const SLOW_RULE = `rule slow_loop {
  condition:
    uint32be(0) == 0x534c4f57 and
    for all i in (0..filesize) : ( for all j in (0..filesize) : ( uint8(i) != 0xff or uint8(j) != 0xfe ) )
}
`;

t0('tmpfs: YARA rules deny a match and allow the rest; edited rules at reload deny what passed; a compile error (file:line:col) keeps the old rules; a scan past timeoutMs → onTimeout, and the engine comes back', async (t) => {
  const rules = join(tempDir(t), 'rules');
  await mkdir(join(rules, 'more'), { recursive: true });
  await writeFile(join(rules, 'marker.yar'), MARKER_RULE);
  await writeFile(join(rules, 'more', 'slow.yara'), SLOW_RULE);
  await writeFile(join(rules, 'README.txt'), 'not a rule file: skipped\n');
  const h = await withDaemon(t, 'tmpfs', {
    notices: true,
    stack: `  - actor: yara
    options: { rules: [${rules}], timeoutMs: 4500 }
    onTimeout: deny
  - actor: default
    options: { answer: allow }`,
    prepare: async (d) => {
      await writeFile(join(d, 'evil.txt'), 'hello EVIL-MARKER bye\n');
      await writeFile(join(d, 'clean.txt'), 'clean\n');
      await writeFile(join(d, 'later.txt'), 'LATER-WORD\n');
      await writeFile(join(d, 'slow.bin'), Buffer.concat([Buffer.from('SLOW'), Buffer.alloc(64 * 1024)]));
      await writeFile(join(d, 'after.txt'), 'after\n');
      await writeFile(join(d, 'evil2.txt'), 'EVIL-MARKER again\n');
    },
  });
  const gen1 = h.daemon.control().generations()['yara'];
  t.regex(gen1 ?? '', /^yara-x:[0-9a-f]{64}#/);

  const evil = join(h.dir, 'evil.txt');
  t.regex((await runChild('cat', [evil])).stderr, denied);
  t.regex(String((await verdictFor(h, evil)).reason), /evil_marker/);
  t.is((await runChild('cat', [join(h.dir, 'clean.txt')])).stdout, 'clean\n');
  const later = join(h.dir, 'later.txt');
  t.is((await runChild('cat', [later])).stdout, 'LATER-WORD\n');

  // A new rule, taken in at reload: a new generation, and the file that passed is denied at its next read.
  await writeFile(join(rules, 'later.yar'), 'rule later_word { strings: $w = "LATER-WORD" condition: $w }\n');
  await h.daemon.reload(h.config);
  const gen2 = h.daemon.control().generations()['yara'];
  t.not(gen2, gen1);
  t.regex((await runChild('cat', [later])).stderr, denied);
  t.regex(String((await verdictFor(h, later)).reason), /later_word/);

  // A broken rule: the reload fails naming file:line:col, and the rules in force stay (the generation too).
  const broken = join(rules, 'broken.yar');
  await writeFile(broken, 'rule fine { condition: true and false }\n\nrule bad {\n  condition: $nope\n}\n');
  const err = await t.throwsAsync(h.daemon.reload(h.config));
  t.regex(err!.message, new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:4:14: error\\[E\\d+\\]: unknown pattern`));
  t.is(h.daemon.control().generations()['yara'], gen2);
  const conf = join(tempDir(t), 'check.yaml');
  await writeFile(conf, `stateDir: ${h.state}\nguards:\n  - path: ${h.dir}\nstack:\n  - actor: yara\n    options: { rules: [${rules}] }\n  - actor: default\n    options: { answer: allow }\n`);
  const check = await runChild('node', [join(REPO, 'dist/src/cli/blessd.js'), 'check', '--config', conf]);
  t.is(check.code, 1, check.stdout + check.stderr);
  t.regex(check.stderr, /broken\.yar:4:14: error\[E\d+\]: unknown pattern/);
  await writeFile(broken, 'rule fine { condition: false }\n');

  // A scan that runs past timeoutMs: onTimeout (deny); the engine thread is replaced and the next files scan.
  const slow = join(h.dir, 'slow.bin');
  const r = await runChild('cat', [slow]);
  t.regex(r.stderr, retried);
  t.regex(String((await verdictFor(h, slow)).reason), / timeout: yara/);
  t.is((await runChild('cat', [join(h.dir, 'after.txt')])).stdout, 'after\n');
  const evil2 = join(h.dir, 'evil2.txt');
  t.regex((await runChild('cat', [evil2])).stderr, denied);
  t.regex(String((await verdictFor(h, evil2)).reason), /evil_marker/);
});
