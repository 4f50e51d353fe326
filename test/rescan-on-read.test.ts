// pool.rescan: onRead, end to end: real gate, real tags, real writer and reader processes. A written file costs no
// scan at its close; its tags are gone (nothing stale is believed), and the first read judges it — refusing it if
// the new content is bad. A reader held while the file is written still gets its rescan at the close.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../src/config/index.js';
import { native } from '../src/gate/addon.js';
import { EICAR } from '../src/daemon/demo.js';
import { runChild, startChild } from './helpers/child.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';
import { lineChild } from './helpers/notify-harness.js';
import { waitFor, waitHeld, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;

const MINIMAL = `guards:
  - path: /srv/files
stack:
  - actor: default
    options: { answer: allow }
`;

test('pool.rescan is onClose unless set; anything but onClose or onRead is an error naming file:line:col and the key', (t) => {
  t.is(parseConfig(MINIMAL, '/etc/blessd/c.yaml').pool.rescan, 'onClose');
  t.is(parseConfig(`${MINIMAL}pool:\n  rescan: onRead\n`, '/etc/blessd/c.yaml').pool.rescan, 'onRead');
  const err = t.throws(() => parseConfig(`${MINIMAL}pool:\n  rescan: sometimes\n`, '/etc/blessd/c.yaml'), { instanceOf: ConfigError });
  t.regex(err!.message, /\/etc\/blessd\/c\.yaml:7:3: pool\.rescan: must be one of onClose, onRead \(got "sometimes"\)/);
});

t0('ext4: with rescan onRead a written file is scanned at its next read, not at its close', async (t) => {
  const h = await withDaemon(t, 'ext4', { notices: true, rescan: 'onRead', prepare: (d) => writeFile(join(d, 'old.txt'), 'old\n') });
  const old = join(h.dir, 'old.txt');
  t.is((await runChild('cat', [old])).stdout, 'old\n');
  const scans = () => h.daemon.stats().scans.signature ?? 0;
  t.is(scans(), 1);
  const r = await runChild('python3', ['-c', `import os\nfor i in range(20):\n fd=os.open('${h.dir}/n%d' % i, os.O_WRONLY|os.O_CREAT)\n os.write(fd,b'new file %d\\n' % i)\n os.close(fd)\nopen('${old}','wb').write(b'${EICAR.replace(/\\/g, '\\\\')}')`]);
  t.is(r.code, 0, r.stderr);
  // Every close reached the daemon once its judgement of it ended (no machine left): a counter, with a bound.
  await waitFor('the writes to be handled', () => h.daemon.stats().machines === 0 && h.notices.filter((n) => n.event === 'dirty').length >= 21, 10_000);
  t.is(scans(), 1, 'no scan at any close');
  t.is(native.getXattr(old, 'trusted.scanned-by.signature'), null, 'the old verdict was cleared: nothing stale is believed');
  t.is((await runChild('cat', [join(h.dir, 'n7')])).stdout, 'new file 7\n');
  t.is(scans(), 2, 'the first read scanned it');
  t.regex((await runChild('cat', [old])).stderr, /Operation not permitted/, 'the rewritten file is judged at its read, and refused');
  t.is(scans(), 3);
});

t0('ext4: with rescan onRead a reader held while the file is written gets its rescan at the close', async (t) => {
  const h = await withDaemon(t, 'ext4', { rescan: 'onRead', prepare: (d) => writeFile(join(d, 'busy.txt'), 'v1\n') });
  const file = join(h.dir, 'busy.txt');
  t.is((await runChild('cat', [file])).stdout, 'v1\n');
  // The writer closes when told (a line on its stdin), once the reader is seen held: the order is the test.
  const writer = lineChild(t, 'python3', ['-c', `import os,sys\nfd=os.open(${JSON.stringify(file)},os.O_WRONLY|os.O_APPEND)\nos.write(fd,b'v2\\n')\nprint('wrote',flush=True)\nsys.stdin.readline()\nos.close(fd)\nprint('closed',flush=True)`]);
  await writer.waitFor((l) => l === 'wrote', 10_000, 'the write');
  const reader = startChild('cat', [file], 15_000);
  await waitHeld(reader.child.pid!, 'the reader held while the writer is open', { syscall: ['read', 'pread64'] });
  t.is(writer.child.exitCode, null, 'the writer still holds its fd');
  writer.child.stdin!.write('close\n');
  await writer.waitFor((l) => l === 'closed', 10_000, 'the close');
  const r = await within('the reader after the close and the rescan', reader.done, 20_000);
  t.is(r.stdout, 'v1\nv2\n', 'read after the writer closed and the rescan passed');
});
