// Attack (issue 9.8): a user's FIFO must not freeze the daemon. A write to a FIFO on a guarded filesystem raises a
// change event; judging it by opening the FIFO would block the main thread until a writer appears (forever), and
// with it every answer, status and SIGTERM. Non-regular files are never opened for judging.
import test from 'ava';
import { join } from 'node:path';
import { EICAR } from '../src/daemon/demo.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { withDaemonProcess } from './helpers/daemon-process.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;

const config = (dir: string) => `guards: [{ path: ${dir}, kind: filesystem, wait: read }]
gate: { deadline: 5s }
pool: { threads: 2, scanTimeout: 5s }
stack:
  - actor: signature
    options: { databases: [${join(process.cwd(), 'signatures')}] }
  - actor: default
    options: { answer: allow }
`;

for (const fs of ['ext4', 'tmpfs'] as const) {
  t0(`${fs}: a FIFO written through by an unprivileged user leaves the daemon answering, and EICAR refused`, async (t) => {
    const d = await withDaemonProcess(t, fs, config);
    await openToEveryone(d.dir);
    const a = await makeAttacker(t);
    const fifo = join(d.dir, 'f');
    // A reader and a writer meet in the FIFO and both leave: a later open for reading would wait for a writer forever.
    const trick = await a.sh(`mkfifo ${fifo} && { cat ${fifo} >/dev/null & echo hi > ${fifo}; wait; }`, { timeoutMs: 10_000 });
    t.is(trick.code, 0, trick.stderr);
    // Several rounds: the change event may reach the daemon a moment after the writer left.
    for (let i = 0; i < 3; i++) {
      const status = await d.ctl(['status', '--json'], 15_000);
      t.is(status.code, 0, `status must answer within 15 s (a frozen daemon never does) (round ${i}): ${status.stderr}`);
    }
    const eicar = join(d.dir, 'e.com');
    const read = await a.sh(`printf '%s' '${EICAR}' > ${eicar} && cat ${eicar}`, { timeoutMs: 15_000 });
    t.false(read.stdout.includes('EICAR'), 'EICAR content must not be served');
    t.regex(read.stderr, /Operation not permitted/);
    t.is(await d.stop(), 0, 'SIGTERM ends the daemon with 0');
  });
}
