// The signature engine against the real ClamAV (clamscan 1.4, Debian's `clamav`), same databases, same files:
// every body wildcard, offset form, hash kind, allow-list and ignore list, each with files that must match and
// near misses that must not. Our verdicts must equal clamscan's, file by file. Containers, unsupported kinds and
// parse errors are checked on our side (ClamAV refuses unsigned .cvd files by design).
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, openSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import signature from '../actors/signature.js';
import { fileLayout } from '../actors/signature/file-type.js';
import { EICAR, tempDir, type TempDir } from './helpers/actor-files.js';

const run = promisify(execFile);
const h = (s: string) => Buffer.from(s, 'latin1').toString('hex');

function withDir(t: { teardown(fn: () => void): void }): TempDir {
  const d = tempDir('blessd-clam-');
  t.teardown(() => d.cleanup());
  return d;
}

/** clamscan's verdict per file name: the signature name, or null (clean). Fails on a clamscan error. */
async function clamscan(db: string, dir: string): Promise<Map<string, string | null>> {
  let out = '';
  try {
    out = (await run('clamscan', ['--no-summary', '--stdout', '-d', db, dir], { maxBuffer: 1 << 24 })).stdout;
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (e.code !== 1) throw new Error(`clamscan failed (${e.code}): ${e.stderr}`);
    out = e.stdout ?? '';
  }
  const verdicts = new Map<string, string | null>();
  for (const line of out.split('\n')) {
    const m = /^(.*): (.*) FOUND$/.exec(line) ?? /^(.*): (OK)$/.exec(line);
    if (!m) continue;
    const name = m[1]!.slice(dir.length + 1);
    verdicts.set(name, m[2] === 'OK' ? null : m[2]!.replace(/\.UNOFFICIAL$/, ''));
  }
  return verdicts;
}

async function ours(databases: string[], d: TempDir, dir: string): Promise<Map<string, string | null>> {
  const actor = await signature.init({ databases });
  const verdicts = new Map<string, string | null>();
  for (const name of readdirSync(dir).sort()) {
    const r = await actor.scan(d.open(join(dir, name)));
    verdicts.set(name, r.answer === 'deny' ? r.reason! : null);
  }
  return verdicts;
}

test('body wildcards, gaps, alternatives, offsets and the ELF entry point: the same verdicts as clamscan', async (t) => {
  t.timeout(120_000);
  const d = withDir(t);
  const files = join(d.dir, 'files');
  mkdirSync(files);
  const put = (name: string, content: string | Buffer) => writeFileSync(join(files, name), content);
  const pad = (s: string) => `some text before|${s}|and after\n`;

  // A real ELF binary, and the bytes at its entry point (located by our reader; clamscan checks it independently).
  const elf = join(files, 'elf-true');
  copyFileSync('/bin/true', elf);
  const elfBytes = readFileSync(elf);
  const layout = fileLayout(openSync(elf, 'r'), elfBytes.length, elfBytes.subarray(0, 4096));
  t.true(layout.entry > 0, 'the ELF entry point is found');
  const atEntry = elfBytes.subarray(layout.entry, layout.entry + 16);
  put('not-elf-same-bytes', Buffer.concat([Buffer.from('plain data, not an ELF file: '), atEntry]));

  const ndb = [
    `S.QQ:0:*:${h('QQ-')}??${h('-end')}`,
    `S.HiNib:0:*:${h('HN-')}4?${h('-e')}`,
    `S.LoNib:0:*:${h('LN-')}?1${h('-e')}`,
    `S.Star:0:*:${h('ST-a')}*${h('ST-b')}`,
    `S.Gap:0:*:${h('GP-a')}{2-4}${h('GP-b')}`,
    `S.GapExact:0:*:${h('GE-a')}{3}${h('GE-b')}`,
    `S.GapMax:0:*:${h('GM-a')}{-2}${h('GM-b')}`,
    `S.GapMin:0:*:${h('GN-a')}{3-}${h('GN-b')}`,
    `S.Alt:0:*:${h('AL-')}(6162|6364)${h('-e')}`,
    `S.Neg:0:*:${h('NG-')}!(61|62)${h('-e')}`,
    `S.Off:0:10:${h('OFFSET-AT-10')}`,
    `S.Range:0:20,5:${h('RANGE-SIG')}`,
    `S.Eof:0:EOF-12:${h('ENDS-HERE-12')}`,
    `S.Entry:6:EP+0:${atEntry.toString('hex')}`,
  ];
  put('qq-hit', pad('QQ-x-end'));
  put('qq-miss', pad('QQ--end'));
  put('hinib-hit', pad('HN-A-e'));
  put('hinib-miss', pad('HN-a-e'));
  put('lonib-hit', pad('LN-a-e'));
  put('lonib-miss', pad('LN-b-e'));
  put('star-hit', pad(`ST-a${'x'.repeat(5000)}ST-b`));
  put('star-miss', pad('ST-b then ST-a'));
  put('gap-hit', pad('GP-axxxGP-b'));
  put('gap-miss', pad('GP-axxxxxGP-b'));
  put('gapexact-hit', pad('GE-axxxGE-b'));
  put('gapexact-miss', pad('GE-axxGE-b'));
  put('gapmax-hit', pad('GM-aGM-b'));
  put('gapmax-miss', pad('GM-axxxGM-b'));
  put('gapmin-hit', pad('GN-axxxxxxxxxxGN-b'));
  put('gapmin-miss', pad('GN-axxGN-b'));
  put('alt-hit', pad('AL-cd-e'));
  put('alt-miss', pad('AL-ce-e'));
  put('neg-hit', pad('NG-z-e'));
  put('neg-miss', pad('NG-a-e'));
  put('off-hit', `0123456789OFFSET-AT-10 tail\n`);
  put('off-miss', `0123456789-OFFSET-AT-10 tail\n`);
  put('range-hit', `${'r'.repeat(23)}RANGE-SIG tail\n`);
  put('range-miss', `${'r'.repeat(26)}RANGE-SIG tail\n`);
  put('eof-hit', `lots of bytes first ENDS-HERE-12`);
  put('eof-miss', `lots of bytes first ENDS-HERE-12.`);
  const db = d.write('wild.ndb', ndb.join('\n') + '\n');

  const clam = await clamscan(db, files);
  const mine = await ours([db], d, files);
  t.is(clam.size, readdirSync(files).length, 'clamscan judged every file');
  t.deepEqual(Object.fromEntries(mine), Object.fromEntries(clam));
  // And the table is not trivially empty: every -hit file is detected, every -miss file is not.
  for (const [name, v] of mine) {
    if (name.endsWith('-hit')) t.truthy(v, `${name} detected`);
    if (name.endsWith('-miss')) t.is(v, null, `${name} clean`);
  }
  t.is(mine.get('elf-true'), 'S.Entry');
  t.is(mine.get('not-elf-same-bytes'), null);
});

test('hash databases (MD5, SHA-1, SHA-256, * sizes), .fp/.sfp allow-lists and .ign2: the same verdicts as clamscan', async (t) => {
  t.timeout(120_000);
  const d = withDir(t);
  const files = join(d.dir, 'files');
  mkdirSync(files);
  const put = (name: string, content: string) => (writeFileSync(join(files, name), content), Buffer.from(content));
  const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
  const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');
  const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const a = put('md5-sized', 'hash me with md5\n');
  const b = put('sha1-any', 'hash me with sha1, any size\n');
  const c = put('sha256-wrong-size', 'hash me with sha256, wrong size\n');
  const e = put('sha256-any', 'hash me with sha256, any size\n');
  const fpFile = put('known-good', `this file carries BODY-ALARM but it is known good\n`);
  put('body-alarm', `BODY-ALARM in another file\n`);
  put('ignored', `IGNORED-SIG appears here\n`);
  put('eicar', EICAR.toString('latin1'));
  const dbs = join(d.dir, 'db');
  mkdirSync(dbs);
  writeFileSync(join(dbs, 'site.hdb'), `${md5(a)}:${a.length}:H.Md5\n${sha1(b)}:*:H.Sha1:73\n`);
  writeFileSync(join(dbs, 'site.hsb'), `${sha256(c)}:${c.length + 1}:H.WrongSize\n${sha256(e)}:*:H.Sha256:73\n${md5(EICAR)}:68:H.Eicar\n`);
  writeFileSync(join(dbs, 'site.ndb'), `B.Alarm:0:*:${h('BODY-ALARM')}\nB.Ignored:0:*:${h('IGNORED-SIG')}\n`);
  writeFileSync(join(dbs, 'site.fp'), `${md5(fpFile)}:${fpFile.length}:KnownGood\n`);
  writeFileSync(join(dbs, 'site.ign2'), `B.Ignored\n`);

  const clam = await clamscan(dbs, files);
  const mine = await ours([dbs], d, files);
  t.is(clam.size, readdirSync(files).length);
  t.deepEqual(Object.fromEntries(mine), Object.fromEntries(clam));
  t.is(mine.get('md5-sized'), 'H.Md5');
  t.is(mine.get('sha1-any'), 'H.Sha1');
  t.is(mine.get('sha256-any'), 'H.Sha256');
  t.is(mine.get('sha256-wrong-size'), null);
  t.is(mine.get('known-good'), null, 'the .fp entry allows it');
  t.is(mine.get('body-alarm'), 'B.Alarm');
  t.is(mine.get('ignored'), null, '.ign2 switched the signature off');
  t.is(mine.get('eicar'), 'H.Eicar');
});

test('a .cvd container (512-byte header, then tar.gz) loads its members; a corrupted one is skipped, named', async (t) => {
  const d = withDir(t);
  const src = join(d.dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'test.ndb'), `Cvd.Body:0:*:${h('INSIDE-A-CVD')}\n`);
  writeFileSync(join(src, 'test.hdb'), `${createHash('md5').update(EICAR).digest('hex')}:68:Cvd.Eicar\n`);
  writeFileSync(join(src, 'test.ldb'), `Logical.One;Engine:51-255,Target:0;0;414243\nLogical.Two;Engine:51-255,Target:0;0;444546\n`);
  writeFileSync(join(src, 'test.info'), `ClamAV-VDB:...\n`);
  const tgz = join(d.dir, 'test.tar.gz');
  await run('tar', ['-czf', tgz, '-C', src, 'test.ndb', 'test.hdb', 'test.ldb', 'test.info']);
  const body = readFileSync(tgz);
  const header = Buffer.alloc(512, ' ');
  header.write(`ClamAV-VDB:01 Dec 2026 00-00 +0000:1:3:90:${createHash('md5').update(body).digest('hex')}:nosig:blessd-test:1796083200`);
  const cvd = join(d.dir, 'dbs', 'test.cvd');
  mkdirSync(join(d.dir, 'dbs'));
  writeFileSync(cvd, Buffer.concat([header, body]));
  const actor = await signature.init({ databases: [join(d.dir, 'dbs')] });
  t.deepEqual(actor.warnings, [`${cvd}/test.ldb: logical signatures (.ldb) are not supported: 2 signature(s) skipped`]);
  t.deepEqual(await actor.scan(d.open(d.write('x.bin', 'xx INSIDE-A-CVD xx'))), { answer: 'deny', reason: 'Cvd.Body' });
  t.deepEqual(await actor.scan(d.open(d.write('eicar.com', EICAR))), { answer: 'deny', reason: 'Cvd.Eicar' });

  // One flipped byte in the archive: the header's MD5 no longer matches.
  const broken = Buffer.concat([header, body]);
  broken[600] ^= 0xff;
  writeFileSync(cvd, broken);
  await t.throwsAsync(async () => signature.init({ databases: [cvd] }), { message: /no usable signature .*test\.cvd: the archive does not match the header's MD5/ });
});

test('unsupported kinds are one warning per file with the count; parse errors name file:line', async (t) => {
  const d = withDir(t);
  const dbs = join(d.dir, 'db');
  mkdirSync(dbs);
  writeFileSync(join(dbs, 'a.ndb'), [`Good:0:*:${h('GOOD-ONE')}`, `Bad.Target:3:*:${h('html')}`, `Bad.Gap:0:*:4142{5-2}4344`, `Bad.EP:0:EP+4:41424344`, `Bad.Hex:0:*:4142zz`].join('\n') + '\n');
  writeFileSync(join(dbs, 'b.cdb'), 'one\ntwo\nthree\n');
  writeFileSync(join(dbs, 'c.cbc'), 'ClamBCafhbnaefoj...\n');
  writeFileSync(join(dbs, 'd.hdb'), `nothex:12:Bad.Hash\n`);
  const actor = await signature.init({ databases: [dbs] });
  const w = actor.warnings!;
  const a = join(dbs, 'a.ndb');
  t.true(w.includes(`${join(dbs, 'b.cdb')}: container metadata signatures (.cdb) are not supported: 3 signature(s) skipped`), w.join('\n'));
  t.true(w.includes(`${join(dbs, 'c.cbc')}: bytecode signatures (.cbc) are not supported: 1 signature(s) skipped`));
  t.regex(w.find((x) => x.startsWith(`${a}:2: `))!, /unsupported TargetType 3/);
  t.regex(w.find((x) => x.startsWith(`${a}:3: `))!, /gap \{5-2\} ends before it starts/);
  t.regex(w.find((x) => x.startsWith(`${a}:4: `))!, /needs TargetType 1 \(PE\) or 6 \(ELF\)/);
  t.regex(w.find((x) => x.startsWith(`${a}:5: `))!, /bad hex signature/);
  t.regex(w.find((x) => x.startsWith(`${join(dbs, 'd.hdb')}:1: `))!, /bad hash 'nothex'/);
  t.is(w.length, 7);
  t.deepEqual(await actor.scan(d.open(d.write('g.bin', 'GOOD-ONE'))), { answer: 'deny', reason: 'Good' });
});

/** A minimal valid PE32 image: headers, one .text section of 512 bytes at file offset 0x200, entry point at it. */
function tinyPe(code: Buffer): Buffer {
  const pe = Buffer.alloc(0x400);
  pe.write('MZ', 0, 'latin1');
  pe.writeUInt32LE(0x40, 0x3c);
  pe.write('PE\0\0', 0x40, 'latin1');
  const coff = 0x44;
  pe.writeUInt16LE(0x14c, coff); // i386
  pe.writeUInt16LE(1, coff + 2); // one section
  pe.writeUInt16LE(0xe0, coff + 16); // SizeOfOptionalHeader
  pe.writeUInt16LE(0x0102, coff + 18); // executable, 32-bit
  const opt = coff + 20;
  pe.writeUInt16LE(0x10b, opt); // PE32
  pe.writeUInt32LE(0x200, opt + 4); // SizeOfCode
  pe.writeUInt32LE(0x1000, opt + 16); // AddressOfEntryPoint
  pe.writeUInt32LE(0x1000, opt + 20); // BaseOfCode
  pe.writeUInt32LE(0x400000, opt + 28); // ImageBase
  pe.writeUInt32LE(0x1000, opt + 32); // SectionAlignment
  pe.writeUInt32LE(0x200, opt + 36); // FileAlignment
  pe.writeUInt16LE(4, opt + 40); // OS version
  pe.writeUInt16LE(4, opt + 48); // subsystem version
  pe.writeUInt32LE(0x2000, opt + 56); // SizeOfImage
  pe.writeUInt32LE(0x200, opt + 60); // SizeOfHeaders
  pe.writeUInt16LE(3, opt + 68); // console
  pe.writeUInt32LE(0x100000, opt + 72);
  pe.writeUInt32LE(0x1000, opt + 76);
  pe.writeUInt32LE(0x100000, opt + 80);
  pe.writeUInt32LE(0x1000, opt + 84);
  pe.writeUInt32LE(16, opt + 92); // NumberOfRvaAndSizes
  const sec = opt + 0xe0;
  pe.write('.text', sec, 'latin1');
  pe.writeUInt32LE(0x200, sec + 8); // VirtualSize
  pe.writeUInt32LE(0x1000, sec + 12); // VirtualAddress
  pe.writeUInt32LE(0x200, sec + 16); // SizeOfRawData
  pe.writeUInt32LE(0x200, sec + 20); // PointerToRawData
  pe.writeUInt32LE(0x60000020, sec + 36); // code, execute, read
  code.copy(pe, 0x200, 0, Math.min(code.length, 0x200));
  return pe;
}

test('PE files: section hashes (.mdb, .msb with * sizes) and EP+n offsets give the same verdicts as clamscan', async (t) => {
  t.timeout(120_000);
  const d = withDir(t);
  const files = join(d.dir, 'files');
  mkdirSync(files);
  const code = (fill: string) => Buffer.from(`\x55\x89\xe5${fill}`.padEnd(0x200, '\x90'), 'latin1');
  const section = (pe: Buffer) => pe.subarray(0x200, 0x400);
  const peMd5 = tinyPe(code('section hashed by md5'));
  const peSha = tinyPe(code('section hashed by sha256'));
  const peEp = tinyPe(code('ENTRY-POINT-MARK'));
  const peOther = tinyPe(code('nothing known'));
  writeFileSync(join(files, 'pe-md5'), peMd5);
  writeFileSync(join(files, 'pe-sha'), peSha);
  writeFileSync(join(files, 'pe-ep'), peEp);
  writeFileSync(join(files, 'pe-other'), peOther);
  // The same section bytes in a file that is not a PE: section signatures must not apply.
  writeFileSync(join(files, 'not-pe'), Buffer.concat([Buffer.from('not a PE file\n'), section(peMd5)]));
  const dbs = join(d.dir, 'db');
  mkdirSync(dbs);
  const md5 = createHash('md5').update(section(peMd5)).digest('hex');
  const sha = createHash('sha256').update(section(peSha)).digest('hex');
  writeFileSync(join(dbs, 'site.mdb'), `512:${md5}:Pe.Section.Md5\n`);
  writeFileSync(join(dbs, 'site.msb'), `*:${sha}:Pe.Section.Sha256:73\n`);
  writeFileSync(join(dbs, 'site.ndb'), `Pe.Entry:1:EP+3:${h('ENTRY-POINT-MARK')}\nPe.Entry.Wrong:1:EP+4:${h('ENTRY-POINT-MARK')}\n`);
  const clam = await clamscan(dbs, files);
  const mine = await ours([dbs], d, files);
  t.is(clam.size, readdirSync(files).length);
  t.deepEqual(Object.fromEntries(mine), Object.fromEntries(clam));
  t.is(mine.get('pe-md5'), 'Pe.Section.Md5');
  t.is(mine.get('pe-sha'), 'Pe.Section.Sha256');
  t.is(mine.get('pe-ep'), 'Pe.Entry');
  t.is(mine.get('pe-other'), null);
  t.is(mine.get('not-pe'), null);
});
