// Reading ClamAV-compatible hand-written databases: .hdb (MD5:size:name), .hsb (SHA256:size:name) and .ndb
// (Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]]) with literal hex only.
// A bad line never fails the load: it becomes a warning naming file:line and is skipped, so that one typo in a
// site's own database does not take the whole scanner down (the good lines keep protecting).
// Like ClamAV (checked with clamscan 1.4), a line starting with '#' is a comment.
import { createHash } from 'node:crypto';
import { constants as fsc, type Stats } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { ActorError } from '../common/errors.js';

export type DatabaseKind = 'hdb' | 'hsb' | 'ndb';

export interface HashSignature {
  kind: 'hdb' | 'hsb';
  /** Lower-case hex digest. */
  hash: string;
  /** File size in bytes, or null for `*` (any size). */
  size: number | null;
  name: string;
}

export interface BodySignature {
  name: string;
  /** Match start, or null for `*` (anywhere). */
  offset: number | null;
  pattern: Buffer;
}

export interface Databases {
  hashes: HashSignature[];
  bodies: BodySignature[];
  warnings: string[];
  /** sha256 over the names and bytes of every database file loaded. */
  generation: string;
}

const KINDS: readonly string[] = ['hdb', 'hsb', 'ndb'];
const DIGITS = /^[0-9]+$/;
// ClamAV target types 1..14 (PE, OLE2, HTML, mail, graphics, ELF, normalized ASCII, ... ) need a file-type
// engine and normalizers we do not have: matching them on raw bytes would be wrong both ways.
const CLAMAV_TARGET_TYPES_MAX = 14;
/** Shorter body patterns would match nearly every file; ClamAV asks for at least two static bytes too. */
const MIN_PATTERN_BYTES = 2;

type LineResult = { hash: HashSignature } | { body: BodySignature } | { problem: string };

function flevels(fields: string[]): string | undefined {
  for (const f of fields) if (f !== '' && !DIGITS.test(f)) return `bad functionality level '${f}' (a decimal number)`;
  return undefined;
}

function parseHashLine(kind: 'hdb' | 'hsb', line: string): LineResult {
  const fields = line.split(':');
  if (fields.length < 3 || fields.length > 5) {
    return { problem: `expected Hash:Size:Name[:MinFL[:MaxFL]], found ${fields.length} field(s)` };
  }
  const [hash, size, name] = fields as [string, string, string];
  const hexLength = kind === 'hdb' ? 32 : 64;
  if (hash.length !== hexLength || !/^[0-9a-fA-F]+$/.test(hash)) {
    return { problem: `bad ${kind === 'hdb' ? 'MD5' : 'SHA-256'} '${hash}' (${hexLength} hex digits)` };
  }
  if (size !== '*' && !DIGITS.test(size)) return { problem: `bad size '${size}' (a decimal number or *)` };
  if (name === '') return { problem: 'empty signature name' };
  const fl = flevels(fields.slice(3));
  if (fl) return { problem: fl };
  return { hash: { kind, hash: hash.toLowerCase(), size: size === '*' ? null : Number(size), name } };
}

function parseBodyLine(line: string): LineResult {
  const fields = line.split(':');
  if (fields.length < 4 || fields.length > 6) {
    return { problem: `expected Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]], found ${fields.length} field(s)` };
  }
  const [name, target, offset, hex] = fields as [string, string, string, string];
  if (name === '') return { problem: 'empty signature name' };
  if (!DIGITS.test(target)) return { problem: `unknown TargetType '${target}'` };
  const type = Number(target);
  if (type > CLAMAV_TARGET_TYPES_MAX) return { problem: `unknown TargetType '${target}'` };
  if (type !== 0) return { problem: `unsupported TargetType ${type} (only 0 = any file is matched on raw bytes)` };
  if (offset !== '*' && !DIGITS.test(offset)) {
    return { problem: `bad offset '${offset}' (only * or a decimal number are supported)` };
  }
  if (/[?*{}()[\]|!]/.test(hex)) return { problem: `wildcards are not supported in '${hex}' (literal hex only)` };
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length % 2 !== 0) {
    return { problem: `bad hex signature '${hex}' (an even number of hex digits)` };
  }
  if (hex.length / 2 < MIN_PATTERN_BYTES) return { problem: `signature shorter than ${MIN_PATTERN_BYTES} bytes` };
  const fl = flevels(fields.slice(4));
  if (fl) return { problem: fl };
  return { body: { name, offset: offset === '*' ? null : Number(offset), pattern: Buffer.from(hex, 'hex') } };
}

/** Bad lines shown one by one per file; the rest are counted (3 MB of junk must not become 12,000 log lines). */
export const DETAILED_PROBLEMS = 10;

/** Parse one database's text. `file` is only for the warnings. */
export function parseDatabase(kind: DatabaseKind, text: string, file: string): Omit<Databases, 'generation'> {
  const out: Omit<Databases, 'generation'> = { hashes: [], bodies: [], warnings: [] };
  let problems = 0;
  let from = 0;
  for (let lineNo = 1; from <= text.length; lineNo++) {
    let to = text.indexOf('\n', from);
    if (to < 0) to = text.length;
    const line = text.charCodeAt(to - 1) === 13 ? text.slice(from, to - 1) : text.slice(from, to);
    from = to + 1;
    if (line === '' || line.startsWith('#')) continue; // ClamAV rejects blank lines; we just skip them
    const r = kind === 'ndb' ? parseBodyLine(line) : parseHashLine(kind, line);
    if ('problem' in r) {
      if (++problems <= DETAILED_PROBLEMS) out.warnings.push(`${file}:${lineNo}: ${r.problem}; line skipped`);
    } else if ('hash' in r) out.hashes.push(r.hash);
    else out.bodies.push(r.body);
  }
  if (problems > DETAILED_PROBLEMS) {
    out.warnings.push(`${file}: ${problems - DETAILED_PROBLEMS} more bad lines skipped (${problems} in all; the first ${DETAILED_PROBLEMS} are shown)`);
  }
  return out;
}

interface DatabaseFile {
  path: string;
  kind: DatabaseKind;
}

/** The files a `databases` entry stands for: the file itself, or every *.hdb, *.hsb, *.ndb in a directory. */
async function expand(path: string): Promise<DatabaseFile[]> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `signature: cannot read database ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory()) {
    const kind = extname(path).slice(1);
    if (!KINDS.includes(kind)) throw new ActorError('ACTOR_DATABASE', `signature: ${path}: unknown database type (expected .hdb, .hsb or .ndb)`);
    return [{ path, kind: kind as DatabaseKind }];
  }
  let names: string[];
  try {
    names = await readdir(path);
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `signature: cannot read database directory ${path}: ${(err as Error).message}`, { cause: err });
  }
  return names
    .filter((n) => KINDS.includes(extname(n).slice(1)))
    .sort()
    .map((n) => ({ path: join(path, n), kind: extname(n).slice(1) as DatabaseKind }));
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

/** Text of a database, or why it cannot be one (ClamAV databases are ASCII; UTF-16 would parse as junk). */
function databaseText(bytes: Buffer): { text: string } | { problem: string } {
  if (bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) {
    return { problem: 'UTF-16 text (a byte-order mark); databases are ASCII: convert it (iconv -f UTF-16 -t ASCII)' };
  }
  if (bytes.indexOf(0) >= 0) return { problem: 'binary data (a NUL byte); databases are ASCII text' };
  return { text: bytes.toString('latin1') };
}

export async function loadDatabases(paths: readonly string[]): Promise<Databases> {
  const all: Omit<Databases, 'generation'> = { hashes: [], bodies: [], warnings: [] };
  const files = (await Promise.all(paths.map(expand))).flat();
  // The generation is a digest of the loaded files' bytes (and names, which carry the kind): any edit of a
  // database makes every older tag of this scanner stale by itself, no manual bump needed. Per-file digests are
  // sorted, so the order of `databases` (or of a directory listing) does not matter.
  const fileDigests: string[] = [];
  for (const file of files) {
    const read = await readDatabase(file.path);
    if ('skip' in read) {
      all.warnings.push(read.skip);
      continue;
    }
    const decoded = databaseText(read.bytes);
    if ('problem' in decoded) {
      all.warnings.push(`${file.path}: ${decoded.problem}; file skipped`);
      continue;
    }
    fileDigests.push(createHash('sha256').update(`${basename(file.path)}\0${read.bytes.length}\0`).update(read.bytes).digest('hex'));
    const db = parseDatabase(file.kind, decoded.text, file.path);
    // Loops, not push(...db.x): a spread of a million elements overflows the call stack.
    for (const h of db.hashes) all.hashes.push(h);
    for (const b of db.bodies) all.bodies.push(b);
    for (const w of db.warnings) all.warnings.push(w);
  }
  if (all.hashes.length + all.bodies.length === 0) {
    // A scanner with nothing to match would pass everything: refuse to load (start fails, a reload keeps the old).
    const where = files.length === 0 ? `no .hdb, .hsb or .ndb file in ${paths.join(', ')}` : `${files.length} file(s) read: ${files.map((f) => f.path).join(', ')}`;
    const why = all.warnings.length > 0 ? `; ${all.warnings.slice(0, 3).join('; ')}` : '';
    throw new ActorError('ACTOR_DATABASE', `signature: no usable signature (${where})${why}`);
  }
  const generation = createHash('sha256').update('blessd-signature-2\n').update(fileDigests.sort().join('\n')).digest('hex');
  return { ...all, generation };
}
