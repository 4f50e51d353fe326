// Paths that are not UTF-8 are logged escaped, so the file can be found again (issue 10.9).
import test from 'ava';
import { join } from 'node:path';
import { displayPath } from '../src/daemon/fs-quiet.js';
import { EICAR } from '../src/daemon/demo.js';
import { runChild } from './helpers/child.js';
import { withDaemonProcess } from './helpers/daemon-process.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

test('valid names stay as they are; other bytes become \\xNN, and then a backslash is \\\\', (t) => {
  t.is(displayPath(Buffer.from('/srv/ä ö\\x.txt')), '/srv/ä ö\\x.txt');
  t.is(displayPath(Buffer.from([0x2f, 0x61, 0xff, 0x62])), '/a\\xffb');
  t.is(displayPath(Buffer.concat([Buffer.from('/é\\'), Buffer.from([0xc3]), Buffer.from('.com')])), '/é\\\\\\xc3.com', 'a cut sequence, a backslash kept apart');
  t.is(displayPath(Buffer.from([0xe2, 0x82, 0xac, 0xed, 0xa0, 0x80])), '€\\xed\\xa0\\x80', 'surrogates encoded in UTF-8 are not UTF-8');
});

const t0 = isRoot() ? test.serial : test.skip;

t0('a denied file whose name is not UTF-8 is logged with the name escaped', async (t) => {
  const d = await withDaemonProcess(t, 'tmpfs', (dir) => `guards: [{ path: ${dir}, kind: filesystem }]
log: { level: info }
stack:
  - actor: signature
    options: { databases: [${join(process.cwd(), 'signatures')}] }
  - actor: default
    options: { answer: allow }
`);
  const made = await runChild('sh', ['-c', `cd ${d.dir} && printf '%s' '${EICAR}' > "$(printf 'bad\\377name.com')" && cat "$(printf 'bad\\377name.com')"`]);
  t.regex(made.stderr, /Operation not permitted/);
  const denial = () => d.log().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((j) => /denied/.test(j.msg ?? ''));
  await waitFor('the denial log line', () => denial() !== undefined);
  t.true(denial().path.endsWith('/bad\\xffname.com'), denial().path);
  t.false(JSON.stringify(denial()).includes('\ufffd'), 'no U+FFFD');
});
