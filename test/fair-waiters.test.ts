// Fair for every waiter, not only the first accessor: one real unprivileged user opens and reads hundreds of
// unjudged files at once (each scan takes a while), and another real user reads the file the flooder opened last —
// a file already queued for judgement under the flooder's uid. The victim's wait must not be the flooder's backlog:
// its read asks for its own uid's turn, so it is answered while most of the flood is still waiting.
import test from 'ava';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FIXTURES, withDaemon } from './helpers/daemon-harness.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;

const FLOOD = 300;
const SCAN_MS = 2000;

// Opens and reads every file at once, one thread each; prints how many passed.
const FLOODER = `
import os, sys
from concurrent.futures import ThreadPoolExecutor
d, n = sys.argv[1], int(sys.argv[2])
def one(i):
    fd = os.open('%s/f%05d' % (d, i), os.O_RDONLY)
    try: return len(os.read(fd, 4096)) > 0
    finally: os.close(fd)
with ThreadPoolExecutor(n) as ex: print(sum(ex.map(one, range(n))))
`;

t0('ext4: a victim reading a file the flooder opened first waits for its own turn, not behind the whole flood', async (t) => {
  const h = await withDaemon(t, 'ext4', {
    queuePerUid: 4 * FLOOD,
    scanTimeout: '60s',
    deadline: '60s',
    stack: `  - actor: ${join(FIXTURES, 'word-actor.js')}
    name: slow
    options: { word: EICAR-STANDARD-ANTIVIRUS-TEST-FILE, ms: ${SCAN_MS} }
  - actor: default
    options: { answer: allow }`,
    prepare: async (d) => {
      await mkdir(join(d, 'flood'));
      for (let i = 0; i < FLOOD; i++) await writeFile(join(d, 'flood', `f${String(i).padStart(5, '0')}`), `flood ${i}\n`);
    },
  });
  await openToEveryone(h.dir);
  const flooder = await makeAttacker(t, 'fld');
  const victim = await makeAttacker(t, 'vic');
  const flood = flooder.start('python3', ['-c', FLOODER, join(h.dir, 'flood'), String(FLOOD)]);
  // The flood is on once (nearly) every flooder file is in judgement: a counter, with a bound that fails.
  await waitFor('the flood to build up', () => h.daemon.stats().machines >= FLOOD * 0.9, 60_000);
  const target = join(h.dir, 'flood', `f${String(FLOOD - 1).padStart(5, '0')}`);
  const r = await victim.run('python3', ['-c', `import os,sys,time\nt=time.monotonic()\nfd=os.open(sys.argv[1],os.O_RDONLY)\nb=os.read(fd,4096)\nprint(len(b), (time.monotonic()-t)*1000)`, target], { timeoutMs: 60_000 });
  const left = h.daemon.stats().machines;
  const [bytes, ms] = r.stdout.trim().split(' ').map(Number);
  t.log(`victim read ${bytes} bytes in ${ms!.toFixed(0)} ms; ${left} of ${FLOOD} flooder files still in judgement then`);
  t.is(r.code, 0, r.stderr);
  t.true(bytes! > 0, 'the content passed once judged');
  // Queued under the flooder's uid alone, the victim's file comes near the end of the flood: nearly nothing left.
  t.true(left > FLOOD / 2, `the victim was answered while ${left} of ${FLOOD} flooder files still waited (its own turn, not the flood's end)`);
  const done = await flood.done;
  t.is(done.stdout.trim(), String(FLOOD), `every flooder read passed in the end: ${done.stdout} ${done.stderr}`);
});
