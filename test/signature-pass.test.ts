// The signature engine's native scan pass (native/match/pass.cc, SignatureEngine.scan) against the JS path it
// replaced (SignatureEngine.scanInJs) and against digests computed here by Node's own crypto: same digests, same
// hits, on real files at the sizes where a chunk loop goes wrong (0, 1, chunk-1, chunk, chunk+1, several chunks)
// and on a file that is shorter than the size the daemon stamped (it shrank since it was stat'ed).
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { loadDatabases } from '../actors/signature/database.js';
import { SignatureEngine } from '../actors/signature/engine.js';
import { tempDir, type TempDir } from './helpers/actor-files.js';

const CHUNK = 4096;
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7];
const ALGOS = ['md5', 'sha1', 'sha256'] as const;

function withDir(t: { teardown(fn: () => void): void }): TempDir {
  const d = tempDir('blessd-pass-');
  t.teardown(() => d.cleanup());
  return d;
}

async function engineOf(d: TempDir, name: string, lines: string[]): Promise<SignatureEngine> {
  const path = d.write(name, lines.join('\n') + '\n');
  return new SignatureEngine(await loadDatabases([path]), CHUNK);
}

/** Both paths over one file, by path, with the size the daemon would have stamped (default: the real one). */
function both(engine: SignatureEngine, path: string, size: number): { native: string | null; js: string | null } {
  const fd = openSync(path, 'r');
  try {
    return { native: engine.scan(fd, size), js: engine.scanInJs(fd, size) };
  } finally {
    closeSync(fd);
  }
}

test('whole-file digests: every algorithm, every odd size, the digest Node computes (native pass and JS path)', async (t) => {
  const d = withDir(t);
  const files = SIZES.map((size) => ({ size, path: d.write(`f-${size}.bin`, randomBytes(size)) }));
  for (const algo of ALGOS) {
    const digestOf = (p: string) => createHash(algo).update(readFileSync(p)).digest('hex');
    // One signature per file (its real digest and size) and, for each, a near miss: the same digest at size+1.
    const lines = files.flatMap(({ size, path }) => [`${digestOf(path)}:${size}:H.${algo}.${size}`, `${digestOf(path)}:${size + 1}:Wrong.${size}`]);
    const engine = await engineOf(d, `${algo}.${algo === 'md5' ? 'hdb' : 'hsb'}`, lines);
    for (const { size, path } of files) t.deepEqual(both(engine, path, size), { native: `H.${algo}.${size}`, js: `H.${algo}.${size}` }, `${algo} size ${size}`);
    // A file of a listed size whose digest is not listed: no hit (one byte differs).
    const other = d.write('other.bin', Buffer.alloc(CHUNK + 1, 0x41));
    t.deepEqual(both(engine, other, CHUNK + 1), { native: null, js: null });
  }
});

test('body patterns at the first byte, the last byte and across chunk borders, at every odd size (native = JS)', async (t) => {
  const d = withDir(t);
  const tail = Buffer.from('Blessd.Pass.Tail');
  const border = Buffer.from('Blessd.Pass.Border');
  const head = Buffer.from('Blessd.Pass.Head');
  const hex = (b: Buffer) => b.toString('hex');
  // Head: anchored at 0 (compared in place); Tail: EOF-16 (streamed, offset checked natively); Border: anywhere.
  const engine = await engineOf(d, 'body.ndb', [`Head:0:0:${hex(head)}`, `Tail:0:EOF-${tail.length}:${hex(tail)}`, `Border:0:*:${hex(border)}`]);
  for (const size of SIZES.filter((s) => s >= border.length)) {
    const clean = Buffer.alloc(size, 0x2e);
    t.deepEqual(both(engine, d.write(`clean-${size}.bin`, clean), size), { native: null, js: null }, `clean ${size}`);
    const withTail = Buffer.from(clean);
    tail.copy(withTail, size - tail.length);
    t.deepEqual(both(engine, d.write(`tail-${size}.bin`, withTail), size), { native: 'Tail', js: 'Tail' }, `tail ${size}`);
    const withHead = Buffer.from(clean);
    head.copy(withHead, 0);
    t.deepEqual(both(engine, d.write(`head-${size}.bin`, withHead), size), { native: 'Head', js: 'Head' }, `head ${size}`);
    // Head one byte late is not at offset 0: no hit.
    const late = Buffer.from(clean);
    head.copy(late, 1);
    t.deepEqual(both(engine, d.write(`late-${size}.bin`, late), size), { native: null, js: null }, `late head ${size}`);
    if (size >= CHUNK + border.length) {
      for (const split of [1, 7, border.length - 1]) {
        const across = Buffer.from(clean);
        border.copy(across, CHUNK - split);
        t.deepEqual(both(engine, d.write(`border-${size}-${split}.bin`, across), size), { native: 'Border', js: 'Border' }, `border ${size}/${split}`);
      }
    }
  }
});

test('anchored literals: a long one that does not fit a short file does not hide a short one after it', async (t) => {
  const d = withDir(t);
  const engine = await engineOf(d, 'anchored.ndb', [`Long:0:0:${Buffer.alloc(40, 0x4c).toString('hex')}`, `Short:0:2:${Buffer.from('SH').toString('hex')}`]);
  const file = d.write('short.bin', Buffer.from('..SH......'));
  t.deepEqual(both(engine, file, 10), { native: 'Short', js: 'Short' });
});

test('an allow-list needs every byte: a body hit in the first chunk of a listed file is allowed, of an unlisted one denied', async (t) => {
  const d = withDir(t);
  const size = 3 * CHUNK + 7;
  const content = Buffer.alloc(size, 0x2e);
  Buffer.from('Blessd.Pass.Early').copy(content, 100);
  const file = d.write('early.bin', content);
  const listed = createHash('sha256').update(content).digest('hex');
  const ndb = d.write('early.ndb', `Early:0:*:${Buffer.from('Blessd.Pass.Early').toString('hex')}\n`);
  const sfp = d.write('good.sfp', `${listed}:${size}:Known.Good\n`);
  const allowed = new SignatureEngine(await loadDatabases([ndb, sfp]), CHUNK);
  t.deepEqual(both(allowed, file, size), { native: null, js: null });
  // The last byte changed: the digest over all bytes differs, the body hit stands.
  content[size - 1] = 0x2f;
  const changed = d.write('early-changed.bin', content);
  t.deepEqual(both(allowed, changed, size), { native: 'Early', js: 'Early' });
});

test('a file shorter than its stamped size (it shrank): the pass stops at the real end, no allow-list decision, hits as before', async (t) => {
  const d = withDir(t);
  const real = CHUNK + 100;
  const stamped = 3 * CHUNK;
  const content = Buffer.alloc(real, 0x2e);
  Buffer.from('Blessd.Pass.Shrunk').copy(content, CHUNK - 3);
  const file = d.write('shrunk.bin', content);
  const clean = d.write('shrunk-clean.bin', Buffer.alloc(real, 0x2e));
  const bodyHex = Buffer.from('Blessd.Pass.Shrunk').toString('hex');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const ndb = d.write('shrunk.ndb', `Shrunk:0:*:${bodyHex}\n`);
  // An allow-list naming the bytes that are there, at the stamped size: not trusted, the file was not read in full.
  const sfp = d.write('shrunk.sfp', `${sha(content)}:${stamped}:Partial.Good\n`);
  // A hash signature over the bytes that are there, at the stamped size: both paths look it up alike.
  const hsb = d.write('shrunk.hsb', `${sha(Buffer.alloc(real, 0x2e))}:${stamped}:Partial.Hash\n`);
  const engine = new SignatureEngine(await loadDatabases([ndb, sfp, hsb]), CHUNK);
  t.deepEqual(both(engine, file, stamped), { native: 'Shrunk', js: 'Shrunk' });
  t.deepEqual(both(engine, clean, stamped), { native: 'Partial.Hash', js: 'Partial.Hash' });
  // Emptied since the stat: nothing to match, nothing read.
  const emptied = d.write('emptied.bin', '');
  t.deepEqual(both(engine, emptied, stamped), { native: null, js: null });
});

test('a read error is thrown with its code, as readSync throws it (the actor turns it into onError)', async (t) => {
  const d = withDir(t);
  const engine = await engineOf(d, 'e.ndb', [`E:0:*:${Buffer.from('Blessd.Pass.E').toString('hex')}`]);
  // A directory's fd: pread fails with EISDIR (a real kernel error, no fake).
  const fd = openSync(d.dir, 'r');
  try {
    const native = t.throws(() => engine.scan(fd, 100));
    const js = t.throws(() => engine.scanInJs(fd, 100));
    t.is((native as NodeJS.ErrnoException).code, 'EISDIR');
    t.is((js as NodeJS.ErrnoException).code, 'EISDIR');
  } finally {
    closeSync(fd);
  }
});

test('the Vectorscan stream is reused from file to file: nothing carries over (a pattern split across two files, a halted scan, a read error)', async (t) => {
  const d = withDir(t);
  const pattern = Buffer.from('Blessd.Pass.Carry');
  const engine = await engineOf(d, 'carry.ndb', [`Carry:0:*:${pattern.toString('hex')}`]);
  const firstHalf = d.write('a.bin', Buffer.concat([Buffer.alloc(100, 0x2e), pattern.subarray(0, 8)]));
  const secondHalf = d.write('b.bin', Buffer.concat([pattern.subarray(8), Buffer.alloc(100, 0x2e)]));
  const whole = d.write('whole.bin', Buffer.concat([Buffer.alloc(10, 0x2e), pattern, Buffer.alloc(10, 0x2e)]));
  const dirFd = openSync(d.dir, 'r');
  t.teardown(() => closeSync(dirFd));
  for (const path of ['native', 'js'] as const) {
    const scan = (file: string) => {
      const fd = openSync(file, 'r');
      try {
        return path === 'native' ? engine.scan(fd, readFileSync(file).length) : engine.scanInJs(fd, readFileSync(file).length);
      } finally {
        closeSync(fd);
      }
    };
    t.is(scan(firstHalf), null, path);
    t.is(scan(secondHalf), null, `${path}: the first file's tail must not complete a match in the second`);
    t.is(scan(whole), 'Carry', path);
    t.is(scan(secondHalf), null, `${path}: after a halted scan`);
    t.is(scan(firstHalf), null, path);
    t.throws(() => (path === 'native' ? engine.scan(dirFd, 100) : engine.scanInJs(dirFd, 100)));
    t.is(scan(secondHalf), null, `${path}: after a scan abandoned by a read error`);
  }
});

test('a digesting scan (the fleet key): the SHA-256 of every byte up to the size, also past a body hit; none for a file that shrank', async (t) => {
  const d = withDir(t);
  const mark = Buffer.from('Blessd.Pass.Early');
  // An anchored hit at byte 0 ends an ordinary pass in its first chunk; a digesting pass reads on to the end.
  const engine = await engineOf(d, 'early.ndb', [`Early:0:0:${mark.toString('hex')}`]);
  for (const size of SIZES) {
    const content = size >= mark.length ? Buffer.concat([mark, randomBytes(size - mark.length)]) : randomBytes(size);
    const path = d.write(`d-${size}.bin`, content);
    const fd = openSync(path, 'r');
    try {
      const sha = Buffer.alloc(32);
      const hit = engine.scan(fd, size, sha);
      t.is(hit, size >= mark.length ? 'Early' : null, `size ${size}`);
      t.true(engine.digested, `size ${size}`);
      t.is(sha.toString('hex'), createHash('sha256').update(content).digest('hex'), `size ${size}`);
      // Stamped bigger than the file now is: cut short, so no digest.
      t.is(engine.scan(fd, size + 1, Buffer.alloc(32)), size >= mark.length ? 'Early' : null);
      t.false(engine.digested, `shrunk, size ${size}`);
    } finally {
      closeSync(fd);
    }
  }
});
