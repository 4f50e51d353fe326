// Loop devices (issue 9.13): the bytes of a guarded file read through a block device instead of the file.
// An unprivileged user has no way in: attaching a loop device needs CAP_SYS_ADMIN in the initial user namespace
// (a user namespace of one's own does not do), and block devices are root's (or group disk's, which can read every
// disk anyway). Root can: the loop driver reads its backing file from the kernel, past every pre-content hook, so
// an image judged at no open is readable through /dev/loopN — what blessd does is judge the backing file at
// losetup's open: refused at once when it is known bad, and in open mode (tmpfs, overlayfs) before anything is
// attached. docs/threat-model.md has the row.
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { chown, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EICAR } from './helpers/actor-files.js';
import { makeAttacker, openToEveryone } from './helpers/attacker.js';
import { runChild } from './helpers/child.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const t0 = isRoot() ? test.serial : test.skip;
const run = promisify(execFile);
const MARKER = 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE';

/** A 1 MiB raw image that starts with EICAR (the shipped signature is anchored at offset 0). */
async function image(dir: string, name: string): Promise<string> {
  const p = join(dir, name);
  const buf = Buffer.alloc(1 << 20);
  EICAR.copy(buf, 0);
  await writeFile(p, buf);
  return p;
}

/** losetup as root in a child (asynchronously: the gate in this process answers its open); detached at teardown. */
async function attach(t: ExecutionContext, file: string) {
  const r = await runChild('losetup', ['--read-only', '--find', '--show', file], { timeoutMs: 30_000 });
  const dev = r.stdout.trim();
  if (r.code === 0 && dev) t.teardown(() => run('losetup', ['-d', dev]).then(() => undefined, () => undefined));
  return { ...r, dev };
}

/** The first sector of a block device, read by a child process (root). */
async function readAt(dev: string) {
  return runChild('dd', [`if=${dev}`, 'bs=512', 'count=1', 'status=none'], { timeoutMs: 30_000 });
}

t0('unprivileged: no loop device can be attached, also not in a user namespace, and no block device opens', async (t) => {
  const h = await withDaemon(t, 'ext4');
  await openToEveryone(h.dir);
  const a = await makeAttacker(t);
  const img = await image(h.dir, 'mine.img');
  await chown(img, a.uid, a.gid);
  const plain = await a.run('losetup', ['--read-only', '--find', '--show', img]);
  t.not(plain.code, 0, `losetup as a user: ${plain.stdout}`);
  t.false(plain.stdout.includes('/dev/loop'));
  const inNs = await a.run('unshare', ['-Ur', 'losetup', '--read-only', '--find', '--show', img]);
  t.not(inNs.code, 0, `losetup as root of a user namespace: ${inNs.stdout}`);
  t.false(inNs.stdout.includes('/dev/loop'));
  // Every block device on this machine: none opens for reading as the user.
  const devs: string[] = [];
  for (const name of await readdir('/dev')) {
    const p = join('/dev', name);
    const s = await stat(p).catch(() => undefined);
    if (s?.isBlockDevice()) devs.push(p);
  }
  t.true(devs.length > 0);
  const opened = await a.run('python3', ['-c', 'import os,sys\nfor p in sys.argv[1:]:\n  try: os.close(os.open(p, os.O_RDONLY)); print(p)\n  except OSError: pass', ...devs]);
  t.is(opened.stdout.trim(), '', `block devices a user could open: ${opened.stdout}`);
});

t0('root: a loop device reads a guarded image past the gate; an image known bad cannot be attached (ext4, read mode)', async (t) => {
  const h = await withDaemon(t, 'ext4');
  const img = await image(h.dir, 'fresh.img');
  // Not judged yet: losetup's open passes (read mode), and the loop driver's reads raise no pre-content event.
  const fresh = await attach(t, img);
  t.is(fresh.code, 0, fresh.stderr);
  const through = await readAt(fresh.dev);
  t.true(through.stdout.includes(MARKER), 'gap today: the bytes are served through the loop device');
  const direct = await runChild('cat', [img], { timeoutMs: 30_000 });
  t.false(direct.stdout.includes(MARKER), 'the file itself is refused');
  // Known bad now (the read above was judged): the next losetup is refused at its open.
  const again = await attach(t, img);
  t.not(again.code, 0, `losetup of a denied image: ${again.stdout}`);
  t.regex(again.stderr, /not permitted|denied/i);
});

t0('root: in open mode the image is judged before losetup can attach it (tmpfs)', async (t) => {
  const h = await withDaemon(t, 'tmpfs', { wait: 'open' });
  const img = await image(h.dir, 'fresh.img');
  const r = await attach(t, img);
  t.not(r.code, 0, `losetup of an unjudged EICAR image in open mode: ${r.stdout}`);
  t.false(r.stdout.includes('/dev/loop'));
});
