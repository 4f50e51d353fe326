// The clamd actor against a real clamd (Debian's clamav-daemon) behind the real gate on a private mount.
// Each test starts its own clamd with a private clamd.conf and database (test/helpers/clamd.ts); clamd takes a
// second or two even for a tiny database, so the tests are few and each covers a whole story.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import type { Notice } from '../src/daemon/daemon.js';
import { runChild, startChild } from './helpers/child.js';
import { waitHeld } from './helpers/wait.js';
import { haveClamd, startClamd } from './helpers/clamd.js';
import { withDaemon, type DaemonHarness } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() && haveClamd() ? test.serial : test.skip;
if (!isRoot() || !haveClamd()) console.log('clamd tests skipped: they need root and /usr/sbin/clamd (apt-get install clamav-daemon)');

const denied = /Operation not permitted/;
// A deny that rests on a failure (timeout, crash, no scanner) is the retryable errno: nothing judged the content.
const retried = /Resource temporarily unavailable/;
const EICAR_SIG = { content: EICAR, name: 'Blessd.Test.EICAR' };

/** The verdict notice for a path (the latest), waiting for it with a bound that fails the test. */
function verdictFor(h: DaemonHarness, path: string, timeoutMs = 10_000): Promise<Notice> {
  const find = () => [...h.notices].reverse().find((n) => n.event === 'verdict' && n['path'] === path);
  const hit = find();
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      h.daemon.off('notice', on);
      reject(new Error(`no verdict for ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (n: Notice) => {
      if (n.event === 'verdict' && n['path'] === path) {
        clearTimeout(timer);
        h.daemon.off('notice', on);
        resolve(n);
      }
    };
    h.daemon.on('notice', on);
  });
}

/** The next generation change of a scanner, bounded. */
function nextGeneration(h: DaemonHarness, scanner: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${scanner}: no generation change within ${timeoutMs} ms`)), timeoutMs);
    const on = (e: { scanner: string; generation: string }) => {
      if (e.scanner !== scanner) return;
      clearTimeout(timer);
      h.daemon.off('generation', on);
      resolve(e.generation);
    };
    h.daemon.on('generation', on);
  });
}

t0('ext4, unix socket (FILDES in an IDSESSION): EICAR denied, clean allowed; RELOAD denies what passed; stopped → onTimeout, killed mid-scan → onError; back → scans resume', async (t) => {
  const clamd = await startClamd(t, [EICAR_SIG]);
  const h = await withDaemon(t, 'ext4', {
    notices: true,
    stack: `  - actor: clamd
    options: { socket: ${clamd.socket}, timeoutMs: 1500, versionIntervalMs: 200 }
    onError: deny
    onTimeout: deny
  - actor: default
    options: { answer: allow }`,
    prepare: async (d) => {
      await writeFile(join(d, 'eicar.com'), EICAR);
      await writeFile(join(d, 'eicar2.com'), EICAR);
      for (const f of ['a', 'b', 'c', 'd', 'slow', 'mid', 'back']) await writeFile(join(d, `${f}.txt`), `clean ${f}\n`);
      await writeFile(join(d, 'later.txt'), 'LATER-CONTENT\n');
    },
  });
  t.regex(h.daemon.control().generations()['clamd'] ?? '', /^clamd:ClamAV [\d.]+\/1\//, 'generation = VERSION with database version 1');

  const eicar = join(h.dir, 'eicar.com');
  t.regex((await runChild('cat', [eicar])).stderr, denied);
  t.regex(String((await verdictFor(h, eicar))['reason']), /Blessd\.Test\.EICAR/);
  for (const f of ['a', 'b', 'c', 'd']) t.is((await runChild('cat', [join(h.dir, `${f}.txt`)])).stdout, `clean ${f}\n`);
  // clamd names the file it read through the passed descriptor: FILDES was used, not only INSTREAM.
  const fildes = (await clamd.logText()).split('\n').filter((l) => l.includes(`${h.dir}/`) && l.endsWith(': OK'));
  t.true(fildes.length >= 1, `clamd log shows no FILDES scan of ${h.dir}:\n${(await clamd.logText()).slice(-2000)}`);

  // A new signature + clamd RELOAD: the new database version is a new generation, and a file that passed is denied
  // at its next read, without restarting blessd.
  const later = join(h.dir, 'later.txt');
  t.is((await runChild('cat', [later])).stdout, 'LATER-CONTENT\n');
  const moved = nextGeneration(h, 'clamd');
  await clamd.writeDatabase(2, [EICAR_SIG, { content: 'LATER-CONTENT\n', name: 'Blessd.Test.Later' }]);
  await clamd.reload();
  t.regex(await moved, /\/2\//);
  const n = h.notices.length;
  t.regex((await runChild('cat', [later])).stderr, denied);
  t.regex(String((await verdictFor(h, later)).reason), /Blessd\.Test\.Later/);
  t.true(h.notices.length > n);

  // clamd stopped: no answer within timeoutMs → onTimeout (deny, retryable).
  clamd.signal('SIGSTOP');
  const slow = join(h.dir, 'slow.txt');
  t.regex((await runChild('cat', [slow])).stderr, retried);
  t.regex(String((await verdictFor(h, slow)).reason), / timeout: clamd/);

  // Killed while a scan waits on it → onError (deny), at once rather than at the deadline.
  // The reader held by the gate: its file's scan is with the stopped clamd (scan counts move only at a result now).
  const mid = join(h.dir, 'mid.txt');
  const reader = startChild('cat', [mid]);
  await waitHeld(reader.child.pid!, 'cat of mid.txt waiting for its verdict');
  await clamd.kill('SIGKILL');
  const r = await reader.done;
  t.regex(r.stderr, retried);
  t.regex(String((await verdictFor(h, mid)).reason), / crash: clamd/);

  // Back: scans resume, without restarting blessd.
  await clamd.start();
  t.is((await runChild('cat', [join(h.dir, 'back.txt')])).stdout, 'clean back\n');
  const eicar2 = join(h.dir, 'eicar2.com');
  t.regex((await runChild('cat', [eicar2])).stderr, denied);
  t.regex(String((await verdictFor(h, eicar2)).reason), /Blessd\.Test\.EICAR/);

  // Rewritten files are rescanned through a descriptor blessd opened by handle (not the kernel's event fd): clamd's
  // reads through it are gated like anyone's unless its pid is exempt as the actor's helper. Not exempt, they
  // would wait for their own scan until onTimeout.
  for (const f of ['a', 'b', 'c', 'd']) {
    const file = join(h.dir, `${f}.txt`);
    await runChild('sh', ['-c', `echo rewritten ${f} > ${file}`]);
    t.is((await runChild('cat', [file])).stdout, `rewritten ${f}\n`, `${f}.txt after its rewrite`);
  }
});

t0('tmpfs, TCP (INSTREAM in chunks): EICAR denied, clean allowed; over StreamMaxLength → onTooLarge', async (t) => {
  const clamd = await startClamd(t, [EICAR_SIG], ['StreamMaxLength 1M']);
  const h = await withDaemon(t, 'tmpfs', {
    notices: true,
    // onError: ok (then the default allows), so that a size refusal misread as an error would let the big file through and fail the test.
    stack: `  - actor: clamd
    options: { host: 127.0.0.1, port: ${clamd.port}, timeoutMs: 3000, streamMaxLength: 1048576, chunkSize: 65536 }
    onError: ok
    onTooLarge: deny
  - actor: default
    options: { answer: allow }`,
    prepare: async (d) => {
      await writeFile(join(d, 'eicar.com'), EICAR);
      await writeFile(join(d, 'clean.txt'), 'clean\n');
      await writeFile(join(d, 'big.bin'), Buffer.alloc(2 * 1024 * 1024, 'x'));
      await writeFile(join(d, 'medium.bin'), Buffer.alloc(512 * 1024, 'y'));
    },
  });
  const eicar = join(h.dir, 'eicar.com');
  t.regex((await runChild('cat', [eicar])).stderr, denied);
  t.regex(String((await verdictFor(h, eicar)).reason), /Blessd\.Test\.EICAR/);
  t.is((await runChild('cat', [join(h.dir, 'clean.txt')])).stdout, 'clean\n');
  // Several chunks, within the limit.
  t.is((await runChild('sh', ['-c', `wc -c < ${join(h.dir, 'medium.bin')}`])).stdout.trim(), String(512 * 1024));
  const big = join(h.dir, 'big.bin');
  t.regex((await runChild('cat', [big])).stderr, denied);
  t.regex(String((await verdictFor(h, big)).reason), / too-large: clamd.*StreamMaxLength/);
  t.true((await clamd.logText()).includes('instream'), 'clamd saw INSTREAM');
});
