// Reading ClamAV databases for the `signature` actor (docs/signatures.md is the reference).
//
// Overview — files in, signature tables out. Owns: finding the files (a path, or every database in a directory),
// reading them safely (non-blocking open, regular files only), unpacking .cvd/.cld containers, parsing each line
// kind, and the generation (a digest of the files' bytes). Hash lines go straight from the file's bytes into
// compact tables (a million signatures: seconds and ~100 MB, not an object per line); body lines become
// BodySignatures for the matcher. A bad line never fails the load: it is a warning naming file:line (the first ten
// per file, then a count), so one typo does not take the scanner down. Kinds we do not match (logical signatures,
// bytecode, ...) are skipped with one warning per file naming the kind and the count. Nothing usable at all is an
// error: a scanner with nothing to match would pass every file.
// Must not: block on a file a user controls, spread a big array onto the call stack, or pass silently.
import { createHash } from 'node:crypto';
import { constants as fsc, type Stats } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { ActorError } from '../common/errors.js';
import { BodySyntaxError, compileBody, type CompiledBody } from './body-pattern.js';
import { ContainerError, readContainer } from './container.js';
import { RAW_TARGETS, TARGET } from './file-type.js';
import { ALGO_BY_HEX_LENGTH, HashTable, type HashAlgo } from './hash-table.js';

/** Where a body match must start. `any`: anywhere; else start ∈ [base + lo, base + hi], base = 0, the size, the EP. */
export type OffsetSpec = { kind: 'any' } | { kind: 'absolute' | 'end' | 'entry'; lo: number; hi: number };

export interface BodySignature {
  name: string;
  target: number;
  offset: OffsetSpec;
  body: CompiledBody;
}

export type HashTables = Map<HashAlgo, HashTable>;

export interface Databases {
  /** Whole-file hashes (.hdb, .hsb). */
  files: HashTables;
  /** PE section hashes (.mdb, .msb). */
  sections: HashTables;
  /** Whole-file hashes of known-good files (.fp, .sfp): never denied. */
  allow: HashTables;
  bodies: BodySignature[];
  /** Signature names switched off (.ign2, .ign). */
  ignored: Set<string>;
  warnings: string[];
  /** sha256 over the names and bytes of every database file loaded. */
  generation: string;
  /** Usable detection signatures (hash + body), after .ign2. */
  signatures: number;
}

type Kind = 'file-hash' | 'section-hash' | 'allow-hash' | 'body' | 'ignore' | 'container';
const KINDS: Record<string, Kind> = {
  hdb: 'file-hash', hsb: 'file-hash', hdu: 'file-hash', hsu: 'file-hash',
  mdb: 'section-hash', msb: 'section-hash', mdu: 'section-hash', msu: 'section-hash',
  fp: 'allow-hash', sfp: 'allow-hash',
  ndb: 'body', ndu: 'body',
  ign2: 'ignore', ign: 'ignore',
  cvd: 'container', cld: 'container', cud: 'container',
};
/** Kinds ClamAV has and this engine does not match: skipped with one warning per file. */
const UNSUPPORTED: Record<string, string> = {
  ldb: 'logical signatures', ldu: 'logical signatures', cdb: 'container metadata signatures', cbc: 'bytecode signatures',
  idb: 'icon signatures', pdb: 'phishing domain lists', gdb: 'phishing domain lists', wdb: 'phishing URL allow-lists',
  ftm: 'file type magic', crb: 'certificate trust rules', cat: 'catalog files', imp: 'import table hashes',
  pwdb: 'password lists', yar: 'YARA rules', yara: 'YARA rules', hwp: 'HWP signatures',
};
/** Container members that carry no signatures. */
const SILENT = new Set(['info', 'cfg', 'dsig', 'txt', 'sign']);

const DIGITS = /^[0-9]+$/;
const CLAMAV_TARGET_TYPES_MAX = 14;
const MIN_FIXED_BYTES = 2;
/** Bad lines shown one by one per file; the rest are counted (3 MB of junk must not become 12,000 log lines). */
export const DETAILED_PROBLEMS = 10;

class Collector {
  /** Lines in the file being parsed: the first table it fills reserves room for all of them. */
  reserveHint = 0;
  readonly db: Omit<Databases, 'generation' | 'signatures'> = { files: new Map(), sections: new Map(), allow: new Map(), bodies: [], ignored: new Set(), warnings: [] };
  table(which: HashTables, algo: HashAlgo): HashTable {
    let t = which.get(algo);
    if (!t) which.set(algo, (t = new HashTable(algo)));
    return t;
  }
}

/** Calls `fn(start, end, lineNo)` for every line of `bytes` that is neither empty nor a comment. */
function eachLine(bytes: Buffer, fn: (start: number, end: number, lineNo: number) => void): void {
  let lineNo = 0;
  for (let from = 0; from < bytes.length; ) {
    lineNo++;
    let to = bytes.indexOf(10, from);
    if (to < 0) to = bytes.length;
    let end = to;
    if (end > from && bytes[end - 1] === 13) end--;
    if (end > from && bytes[from] !== 0x23 /* # */) fn(from, end, lineNo);
    from = to + 1;
  }
}

function flevels(fields: string[]): string | undefined {
  for (const f of fields) if (f !== '' && !DIGITS.test(f)) return `bad functionality level '${f}' (a decimal number)`;
  return undefined;
}

const isHexByte = (c: number) => (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);

/** A hash line, parsed from the bytes: hash:size:name (size:hash:name for sections). Returns a problem or null. */
function hashLine(c: Collector, kind: Kind, bytes: Buffer, start: number, end: number): string | null {
  const colons: number[] = [];
  for (let i = start; i < end && colons.length < 6; i++) if (bytes[i] === 0x3a) colons.push(i);
  if (colons.length < 2 || colons.length > 4) return `expected ${kind === 'section-hash' ? 'Size:Hash:Name' : 'Hash:Size:Name'}[:MinFL[:MaxFL]], found ${colons.length + 1} field(s)`;
  const sectionFirst = kind === 'section-hash';
  const [hashStart, hashEnd] = sectionFirst ? [colons[0]! + 1, colons[1]!] : [start, colons[0]!];
  const [sizeStart, sizeEnd] = sectionFirst ? [start, colons[0]!] : [colons[0]! + 1, colons[1]!];
  const hexLength = hashEnd - hashStart;
  const algo = ALGO_BY_HEX_LENGTH[hexLength];
  let hexOk = algo !== undefined;
  for (let i = hashStart; hexOk && i < hashEnd; i++) hexOk = isHexByte(bytes[i]!);
  if (!hexOk) return `bad hash '${bytes.toString('latin1', hashStart, hashEnd)}' (32, 40 or 64 hex digits: MD5, SHA-1 or SHA-256)`;
  let size: number | null = null;
  if (!(sizeEnd - sizeStart === 1 && bytes[sizeStart] === 0x2a)) {
    size = 0;
    if (sizeEnd === sizeStart) return `bad size '' (a decimal number or *)`;
    for (let i = sizeStart; i < sizeEnd; i++) {
      const d = bytes[i]! - 0x30;
      if (d < 0 || d > 9) return `bad size '${bytes.toString('latin1', sizeStart, sizeEnd)}' (a decimal number or *)`;
      size = size * 10 + d;
    }
  }
  const nameEnd = colons[2] ?? end;
  if (nameEnd === colons[1]! + 1) return 'empty signature name';
  if (colons.length > 2) {
    const fl = flevels(bytes.toString('latin1', colons[2]! + 1, end).split(':'));
    if (fl) return fl;
  }
  const which = kind === 'file-hash' ? c.db.files : kind === 'section-hash' ? c.db.sections : c.db.allow;
  const table = c.table(which, algo!);
  if (table.count === 0 && c.reserveHint > 0) table.reserve(c.reserveHint);
  table.add(bytes, hashStart, size, bytes, colons[1]! + 1, nameEnd);
  return null;
}

function offsetSpec(offset: string, target: number): OffsetSpec | string {
  if (offset === '*') return { kind: 'any' };
  const m = /^(EOF-|EP\+|EP-)?([0-9]+)(?:,([0-9]+))?$/.exec(offset);
  if (!m) return `bad offset '${offset}' (supported: *, n, n,m, EOF-n[,m], EP+n[,m], EP-n[,m])`;
  const n = Number(m[2]);
  const span = m[3] === undefined ? 0 : Number(m[3]);
  if (!m[1]) return { kind: 'absolute', lo: n, hi: n + span };
  if (m[1] === 'EOF-') return { kind: 'end', lo: -n, hi: -n + span };
  if (target !== TARGET.pe && target !== TARGET.elf) return `offset '${offset}' needs TargetType 1 (PE) or 6 (ELF), which have an entry point`;
  const sign = m[1] === 'EP+' ? 1 : -1;
  return { kind: 'entry', lo: sign * n, hi: sign * n + span };
}

function bodyLine(c: Collector, line: string): string | null {
  const fields = line.split(':');
  if (fields.length < 4 || fields.length > 6) return `expected Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]], found ${fields.length} field(s)`;
  const [name, targetField, offset, hex] = fields as [string, string, string, string];
  if (name === '') return 'empty signature name';
  if (!DIGITS.test(targetField) || Number(targetField) > CLAMAV_TARGET_TYPES_MAX) return `unknown TargetType '${targetField}'`;
  const target = Number(targetField);
  if (!RAW_TARGETS.has(target)) return `unsupported TargetType ${target} (it needs ClamAV's normalisers or extractors)`;
  const spec = offsetSpec(offset, target);
  if (typeof spec === 'string') return spec;
  let body: CompiledBody;
  try {
    body = compileBody(hex);
  } catch (err) {
    if (err instanceof BodySyntaxError) return `bad hex signature '${hex.length > 60 ? `${hex.slice(0, 60)}…` : hex}': ${err.message}`;
    throw err;
  }
  if (body.fixedBytes < MIN_FIXED_BYTES) return `signature with fewer than ${MIN_FIXED_BYTES} fixed bytes`;
  const fl = flevels(fields.slice(4));
  if (fl) return fl;
  c.db.bodies.push({ name, target, offset: spec, body });
  return null;
}

/** One database file's lines into the collector; problems become (summarised) warnings. */
function parseFile(c: Collector, kind: Exclude<Kind, 'container'>, bytes: Buffer, file: string): void {
  let problems = 0;
  c.reserveHint = kind === 'file-hash' || kind === 'section-hash' || kind === 'allow-hash' ? countNewlines(bytes) + 1 : 0;
  eachLine(bytes, (start, end, lineNo) => {
    let problem: string | null;
    if (kind === 'body') problem = bodyLine(c, bytes.toString('latin1', start, end));
    else if (kind === 'ignore') {
      const fields = bytes.toString('latin1', start, end).split(':');
      // .ign2: Name[:md5]; the old .ign: Repository:Line:Name.
      const name = fields.length >= 3 ? fields[2]! : fields[0]!;
      problem = name === '' ? 'empty signature name' : (c.db.ignored.add(name), null);
    } else problem = hashLine(c, kind, bytes, start, end);
    if (problem !== null && ++problems <= DETAILED_PROBLEMS) c.db.warnings.push(`${file}:${lineNo}: ${problem}; line skipped`);
  });
  if (problems > DETAILED_PROBLEMS) {
    c.db.warnings.push(`${file}: ${problems - DETAILED_PROBLEMS} more bad lines skipped (${problems} in all; the first ${DETAILED_PROBLEMS} are shown)`);
  }
}

function countNewlines(bytes: Buffer): number {
  let n = 0;
  for (let at = bytes.indexOf(10); at >= 0; at = bytes.indexOf(10, at + 1)) n++;
  return n;
}

function countLines(bytes: Buffer): number {
  let n = 0;
  eachLine(bytes, () => n++);
  return n;
}

/** Why these bytes cannot be a text database, if they cannot (ClamAV databases are ASCII). */
function notText(bytes: Buffer): string | null {
  if (bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) {
    return 'UTF-16 text (a byte-order mark); databases are ASCII: convert it (iconv -f UTF-16 -t ASCII)';
  }
  if (bytes.indexOf(0) >= 0) return 'binary data (a NUL byte); databases are ASCII text';
  return null;
}

/** One file (or container member) by its extension. */
function ingest(c: Collector, name: string, bytes: Buffer, where: string): void {
  const ext = extname(name).slice(1).toLowerCase();
  const kind = KINDS[ext];
  if (kind === 'container') {
    let members;
    try {
      members = readContainer(bytes);
    } catch (err) {
      if (err instanceof ContainerError) {
        c.db.warnings.push(`${where}: ${err.message}; file skipped`);
        return;
      }
      throw err;
    }
    for (const m of members) ingest(c, m.name, m.bytes, `${where}/${m.name}`);
    return;
  }
  if (kind === undefined) {
    const what = UNSUPPORTED[ext];
    if (what) c.db.warnings.push(`${where}: ${what} (.${ext}) are not supported: ${countLines(bytes)} signature(s) skipped`);
    else if (!SILENT.has(ext) && name !== 'COPYING') c.db.warnings.push(`${where}: unknown database type (.${ext}); skipped`);
    return;
  }
  const problem = notText(bytes);
  if (problem) {
    c.db.warnings.push(`${where}: ${problem}; file skipped`);
    return;
  }
  parseFile(c, kind, bytes, where);
}

const isDatabaseName = (n: string) => {
  const ext = extname(n).slice(1).toLowerCase();
  return ext in KINDS || ext in UNSUPPORTED;
};

/** The files a `databases` entry stands for: the file itself, or every database file in a directory. */
async function expand(path: string): Promise<string[]> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `signature: cannot read database ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory()) {
    if (!isDatabaseName(path)) throw new ActorError('ACTOR_DATABASE', `signature: ${path}: unknown database type (expected a ClamAV database: .hdb, .hsb, .ndb, .cvd, ...)`);
    return [path];
  }
  let names: string[];
  try {
    names = await readdir(path);
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `signature: cannot read database directory ${path}: ${(err as Error).message}`, { cause: err });
  }
  return names.filter(isDatabaseName).sort().map((n) => join(path, n));
}

/**
 * A database's bytes, or a reason to skip it. Opened non-blocking and checked to be a regular file before any read:
 * a FIFO (or a device, a socket) named `x.ndb` would otherwise hold the load, and the daemon's start, for ever.
 */
async function readDatabase(path: string): Promise<{ bytes: Buffer } | { skip: string }> {
  let fh;
  try {
    fh = await open(path, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `signature: cannot read database ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { skip: `${path}: not a regular file (${fileType(st)}); skipped` };
    return { bytes: await fh.readFile() };
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `signature: cannot read database ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    await fh.close();
  }
}

function fileType(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  return 'not a file';
}

export async function loadDatabases(paths: readonly string[]): Promise<Databases> {
  const c = new Collector();
  const files = (await Promise.all(paths.map(expand))).flat();
  // The generation is a digest of the loaded files' bytes (and names, which carry the kind): any edit of a
  // database makes every older tag of this scanner stale by itself, no manual bump needed. Per-file digests are
  // sorted, so the order of `databases` (or of a directory listing) does not matter.
  const fileDigests: string[] = [];
  for (const path of files) {
    const read = await readDatabase(path);
    if ('skip' in read) {
      c.db.warnings.push(read.skip);
      continue;
    }
    fileDigests.push(createHash('sha256').update(`${basename(path)}\0${read.bytes.length}\0`).update(read.bytes).digest('hex'));
    ingest(c, basename(path), read.bytes, path);
  }
  const db = c.db;
  if (db.ignored.size > 0) db.bodies = db.bodies.filter((b) => !db.ignored.has(b.name));
  for (const t of [...db.files.values(), ...db.sections.values(), ...db.allow.values()]) t.seal();
  let signatures = db.bodies.length;
  for (const t of [...db.files.values(), ...db.sections.values()]) signatures += t.count;
  if (signatures === 0) {
    // A scanner with nothing to match would pass everything: refuse to load (start fails, a reload keeps the old).
    const where = files.length === 0 ? `no database file in ${paths.join(', ')}` : `${files.length} file(s) read: ${files.join(', ')}`;
    const why = db.warnings.length > 0 ? `; ${db.warnings.slice(0, 3).join('; ')}` : '';
    throw new ActorError('ACTOR_DATABASE', `signature: no usable signature (${where})${why}`);
  }
  const generation = createHash('sha256').update('blessd-signature-2\n').update(fileDigests.sort().join('\n')).digest('hex');
  return { ...db, generation, signatures };
}
