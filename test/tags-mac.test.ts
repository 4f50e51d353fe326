// The tag MAC and the stamp are computed natively (native/tags: verify.cc tag_mac, stamp.cc; native/proc/fd_path.cc
// for the display path). Each is held here to an independent computation in node: HMAC-SHA-256 of node:crypto over
// the message mac.ts documents, fstatSync + the ioctl for the stamp, readlinkSync for the path — on real files of a
// private tmpfs and ext4 image, with tags the real TagStore writes.
import test from 'ava';
import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../src/gate/addon.js';
import { decodeTag } from '../src/tags/codec.js';
import { computeMac, MAC_DOMAIN } from '../src/tags/mac.js';
import { readStampAndCtime } from '../src/tags/stamp.js';
import { TagStore } from '../src/tags/store.js';
import { isRoot, makeScratch, type ScratchKind } from './helpers/scratch.js';

const nodeMac = (key: Buffer, xattrName: string, scanner: string, body: string) =>
  createHmac('sha256', key).update(`${MAC_DOMAIN}\0${xattrName}\0${scanner}\0${body}`, 'utf8').digest('hex');

test('the native MAC is node\'s HMAC-SHA-256 over domain, xattr name, scanner and body, for any input', (t) => {
  const bodies = ['', 'v1 ok gen=a%23b ino=1 igen=2 size=3 mtime=4 time=5', 'reason=ü€ %20', 'x'.repeat(3000), '\u{1F600} emoji'];
  for (let i = 0; i < 200; i++) {
    const key = randomBytes(32);
    const body = i < bodies.length ? bodies[i]! : randomBytes(1 + (i % 97)).toString('base64');
    const scanner = `s${i % 7}`;
    const name = `${i % 2 ? 'user' : 'trusted'}.scanned-by.${scanner}`;
    t.is(computeMac(key, name, scanner, body), nodeMac(key, name, scanner, body), `input ${i}`);
  }
  // Every bound name changes it.
  const key = randomBytes(32);
  const base = computeMac(key, 'trusted.scanned-by.a', 'a', 'body');
  t.not(computeMac(key, 'user.scanned-by.a', 'a', 'body'), base);
  t.not(computeMac(key, 'trusted.scanned-by.a', 'b', 'body'), base);
  t.not(computeMac(randomBytes(32), 'trusted.scanned-by.a', 'a', 'body'), base);
  t.throws(() => native.tagMac(Buffer.alloc(31), 'n', 's', 'b'), { message: /32 bytes/ });
});

const t0 = isRoot() ? test.serial : test.skip;

for (const kind of ['tmpfs', 'ext4'] as ScratchKind[]) {
  t0(`${kind}: the native stamp is fstat's (ino, size, mtime, ctime in ns) and the inode generation; the path is readlink's`, async (t) => {
    const scratch = await makeScratch(kind, 16);
    const fds: number[] = [];
    t.teardown(async () => {
      for (const fd of fds) closeSync(fd);
      await scratch.cleanup();
    });
    for (const [i, size] of [0, 1, 4096, 123_457].entries()) {
      const path = join(scratch.dir, `f${i} with space`);
      writeFileSync(path, Buffer.alloc(size, 7));
      const fd = openSync(path, 'r');
      fds.push(fd);
      const st = fstatSync(fd, { bigint: true });
      let igen = 0;
      try {
        igen = native.inodeGeneration(fd) ?? 0;
      } catch {
        igen = 0;
      }
      const { stamp, ctimeNs } = readStampAndCtime(fd);
      t.deepEqual(stamp, { ino: st.ino, igen, size: st.size, mtimeNs: st.mtimeNs }, path);
      t.is(ctimeNs, st.ctimeNs);
      if (kind === 'ext4') t.not(stamp.igen, 0, 'ext4 keeps inode generations');
      t.is(native.fdPath(fd), readlinkSync(`/proc/self/fd/${fd}`));
      t.is(native.fdPath(fd), path);
    }
    // A file removed while open: the kernel's " (deleted)" suffix, as readlink gives it.
    const gone = join(scratch.dir, 'gone');
    writeFileSync(gone, 'x');
    const fd = openSync(gone, 'r');
    fds.push(fd);
    unlinkSync(gone);
    t.is(native.fdPath(fd), `${gone} (deleted)`);
    const closed = openSync(join(scratch.dir, 'f0 with space'), 'r');
    closeSync(closed);
    t.is(native.fdPath(closed), null, 'no such descriptor');
    t.throws(() => readStampAndCtime(closed), { message: /fstat of fd/ });
  });

  t0(`${kind}: tags the store writes carry a MAC node's HMAC agrees with, for leases and results`, async (t) => {
    const scratch = await makeScratch(kind, 16);
    const path = join(scratch.dir, 'f');
    writeFileSync(path, 'content\n');
    const fd = openSync(path, 'r');
    t.teardown(async () => {
      closeSync(fd);
      await scratch.cleanup();
    });
    const key = randomBytes(32);
    const store = new TagStore({ namespace: 'trusted', key });
    const check = (what: string) => {
      const raw = native.getXattr(fd, 'trusted.scanned-by.sig');
      if (!raw) return t.fail(`${what}: no tag`);
      const d = decodeTag(raw);
      if (!d.ok) return t.fail(`${what}: ${d.problem}`);
      t.is(d.tag.mac, nodeMac(key, 'trusted.scanned-by.sig', 'sig', d.tag.body), what);
      return d.tag.value.kind;
    };
    const lease = store.begin(fd, 'sig', 'g#0');
    if (lease.status !== 'leased') return t.fail('no lease');
    t.is(check('lease'), 'scanning');
    t.is((await store.finish(fd, 'sig', lease.token, { answer: 'deny', reason: 'bad ü' }, 'g#0')).status, 'written');
    t.is(check('result'), 'result');
    const judged = store.readSync(fd, { sig: 'g#0' }).tags[0];
    t.is(judged?.judgement, 'valid');
  });
}
