// Attack (issue 9.7): change a blessed file while the daemon is down and put its mtime back. With the shipped
// stamp (ctime) the tags are stale after the restart and EICAR is refused; files nobody touched are not rescanned.
import test from 'ava';
import { statSync } from 'node:fs';
import { chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { CTIME_SLACK_MS } from '../src/tags/ctime.js';
import { runChild } from './helpers/child.js';
import { clockPast } from './helpers/wait.js';
import { FIXTURES, REPO, withDaemon } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;

// Two scanners that write tags (their writes move ctime: the newest must count), then the default.
const stack = `  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: ${join(FIXTURES, 'word-actor.js')}
    name: word
    options: { word: NEVER-PRESENT }
  - actor: default
    options: { answer: allow }`;

for (const fs of ['ext4', 'tmpfs'] as const) {
  t0(`${fs}: dd conv=notrunc + touch -m back while the daemon is down: EICAR refused after restart, untouched files not rescanned`, async (t) => {
    const clean = 'A'.repeat(EICAR.length); // same size as what replaces it
    const h = await withDaemon(t, fs, {
      stack,
      prepare: async (d) => {
        await writeFile(join(d, 'victim.com'), clean);
        for (let i = 0; i < 3; i++) await writeFile(join(d, `keep${i}.txt`), `keep ${i}\n`);
      },
    });
    await openToEveryone(h.dir);
    const victim = join(h.dir, 'victim.com');
    const a = await makeAttacker(t);
    await chown(victim, a.uid, a.gid); // the attacker's own file, as on a shared upload directory
    t.is((await a.run('cat', [victim])).stdout, clean, 'the clean file passes and is tagged');
    for (let i = 0; i < 3; i++) t.is((await runChild('cat', [join(h.dir, `keep${i}.txt`)])).stdout, `keep ${i}\n`);
    t.is(h.daemon.stats().scans['signature'], 4);
    await h.stop(); // tags are written by now: stop waits for the pool
    // The change must come after the window a tag write may take to land (ctime.ts): the victim's ctime is the
    // moment its last tag landed, and the clock passing that plus the slack is the event.
    await clockPast(Number(statSync(victim, { bigint: true }).ctimeNs / 1_000_000n) + CTIME_SLACK_MS);

    const before = (await a.sh(`stat -c %.9Y ${victim}`)).stdout.trim();
    const swap = await a.sh(`printf '%s' '${EICAR}' | dd of=${victim} conv=notrunc status=none && touch -m -d @${before} ${victim} && stat -c '%.9Y %s' ${victim}`);
    t.is(swap.code, 0, swap.stderr);
    t.is(swap.stdout.trim(), `${before} ${EICAR.length}`, 'size and mtime are as the tag recorded them');

    await h.restart();
    for (let i = 0; i < 3; i++) t.is((await runChild('cat', [join(h.dir, `keep${i}.txt`)])).stdout, `keep ${i}\n`);
    t.is(h.daemon.stats().scans['signature'] ?? 0, 0, 'files nobody touched keep their tags: a restart rescans nothing');
    const read = await a.run('cat', [victim]);
    t.false(read.stdout.includes('EICAR'), 'the swapped-in EICAR must not be served');
    t.regex(read.stderr, /Operation not permitted/);
    t.is(h.daemon.stats().scans['signature'], 1, 'only the changed file was scanned again');
  });
}

