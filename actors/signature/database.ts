// Reading ClamAV-compatible hand-written databases: .hdb (MD5:size:name), .hsb (SHA256:size:name) and .ndb
// (Name:TargetType:Offset:HexSignature[:MinFL[:MaxFL]]) with literal hex only.
// A bad line never fails the load: it becomes a warning naming file:line and is skipped, so that one typo in a
// site's own database does not take the whole scanner down (the good lines keep protecting).
// Like ClamAV (checked with clamscan 1.4), a line starting with '#' is a comment.
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
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
  /** sha256 over the sorted, de-duplicated canonical form of every loaded signature. */
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

/** Parse one database's text. `file` is only for the warnings. */
export function parseDatabase(kind: DatabaseKind, text: string, file: string): Omit<Databases, 'generation'> {
  const out: Omit<Databases, 'generation'> = { hashes: [], bodies: [], warnings: [] };
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '' || line.startsWith('#')) return; // ClamAV rejects blank lines; we just skip them
    const r = kind === 'ndb' ? parseBodyLine(line) : parseHashLine(kind, line);
    if ('problem' in r) out.warnings.push(`${file}:${i + 1}: ${r.problem}; line skipped`);
    else if ('hash' in r) out.hashes.push(r.hash);
    else out.bodies.push(r.body);
  });
  return out;
}

function canonical(db: Omit<Databases, 'generation' | 'warnings'>): string[] {
  return [
    ...db.hashes.map((h) => `${h.kind}:${h.hash}:${h.size ?? '*'}:${h.name}`),
    ...db.bodies.map((b) => `ndb:${b.name}:0:${b.offset ?? '*'}:${b.pattern.toString('hex')}`),
  ];
}

/** The files a `databases` entry stands for: the file itself, or every *.hdb, *.hsb, *.ndb in a directory. */
async function expand(path: string): Promise<string[]> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `signature: cannot read database ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory()) return [path];
  let names: string[];
  try {
    names = await readdir(path);
  } catch (err) {
    throw new ActorError('ACTOR_DATABASE', `signature: cannot read database directory ${path}: ${(err as Error).message}`, { cause: err });
  }
  return names
    .filter((n) => KINDS.includes(extname(n).slice(1)))
    .sort()
    .map((n) => join(path, n));
}

export async function loadDatabases(paths: readonly string[]): Promise<Databases> {
  const all: Omit<Databases, 'generation'> = { hashes: [], bodies: [], warnings: [] };
  const files = (await Promise.all(paths.map(expand))).flat();
  for (const file of files) {
    const kind = extname(file).slice(1);
    if (!KINDS.includes(kind)) {
      throw new ActorError('ACTOR_DATABASE', `signature: ${file}: unknown database type (expected .hdb, .hsb or .ndb)`);
    }
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ActorError('ACTOR_DATABASE', `signature: cannot read database ${file}: ${(err as Error).message}`, { cause: err });
    }
    const db = parseDatabase(kind as DatabaseKind, text, file);
    all.hashes.push(...db.hashes);
    all.bodies.push(...db.bodies);
    all.warnings.push(...db.warnings);
  }
  // Sorted and de-duplicated: the generation depends on what is detected, not on file order, comments or layout.
  const lines = [...new Set(canonical(all))].sort();
  const generation = createHash('sha256').update('blessd-signature-1\n').update(lines.join('\n')).digest('hex');
  return { ...all, generation };
}
