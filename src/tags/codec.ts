// The text format of a tag value. Versioned ("v1 "), one line of printable ASCII, fields in a fixed order:
//
//   v1 <deny|ok|allow> gen=<g> ino=<n> igen=<n> size=<n> mtime=<ns> time=<ms> [sha256=<hex>] [reason=<r>] mac=<hex>
//   v1 scanning token=<hex> holder=<host:pid> until=<ms> ino=<n> igen=<n> size=<n> mtime=<ns> time=<ms> mac=<hex>
//
// Free text (gen, reason, holder) is percent-encoded, so a value never holds a space, a newline or a byte a
// terminal would act on. The mac is over everything before " mac=" (see mac.ts), so the decoder keeps that text
// as `body` rather than re-encoding (which would let a lenient decoder accept two spellings of one tag).
// Anything else — junk, binary, too long, another version, a field out of order — does not parse: the caller
// treats the tag as absent and reports it.
import type { AnswerKind } from '../policy/answer.js';
import { TagError } from './errors.js';
import { computeMac, macMatches } from './mac.js';
import type { Stamp } from './stamp.js';

export const TAG_VERSION = 'v1';
/** Values longer than this are not ours (ext4 keeps at most one block per value anyway). */
export const MAX_VALUE_BYTES = 4096;
const MAX_GENERATION_CHARS = 256; // encoded
const MAX_HOLDER_CHARS = 300; // encoded
const MAX_REASON_CHARS = 1536; // encoded; longer reasons are cut, not refused: a verdict must be writable

export interface ResultTag {
  kind: 'result';
  answer: AnswerKind;
  reason?: string;
  /** The scanner's generation as the tag store writes it: <actor generation>#<bump counter>. */
  generation: string;
  stamp: Stamp;
  /** When the verdict was written, ms since the epoch. */
  time: number;
  /** sha256 of the content, hex (content stamp mode only). */
  digest?: string;
}

export interface ScanningTag {
  kind: 'scanning';
  /** Random, hex: only the holder that wrote it may replace it with a result. */
  token: string;
  /** host:pid of the process that holds the lease. */
  holder: string;
  /** The lease ends at this time, ms since the epoch; after it anyone may take the file over. */
  leaseUntil: number;
  /** The stamp when the scan began: the result is bound to it. */
  stamp: Stamp;
  time: number;
}

export type TagValue = ResultTag | ScanningTag;

export interface DecodedTag {
  value: TagValue;
  /** The signed text (everything before " mac="). */
  body: string;
  mac: string;
}

export type DecodeResult = { ok: true; tag: DecodedTag } | { ok: false; problem: string };

const pct = (s: string) => encodeURIComponent(s);

function stampFields(s: Stamp): string[] {
  return [`ino=${s.ino}`, `igen=${s.igen}`, `size=${s.size}`, `mtime=${s.mtimeNs}`];
}

function cutReason(reason: string): string {
  let enc = pct(reason);
  if (enc.length <= MAX_REASON_CHARS) return enc;
  // Cut by code points so no surrogate pair is split (encodeURIComponent throws on a lone surrogate).
  const points = Array.from(reason);
  let n = points.length;
  while (n > 0 && enc.length > MAX_REASON_CHARS) {
    n = Math.floor(n * 0.9);
    enc = pct(points.slice(0, n).join('') + '…');
  }
  return enc;
}

/** The signed text of a value, without the mac. */
export function encodeBody(value: TagValue): string {
  const f: string[] = [TAG_VERSION];
  if (value.kind === 'scanning') {
    if (!/^[0-9a-f]{8,64}$/.test(value.token)) throw new TagError('TAG_BAD_OPTION', `scanning token must be 8-64 hex digits, got ${JSON.stringify(value.token)}`);
    const holder = pct(value.holder);
    if (holder.length > MAX_HOLDER_CHARS) throw new TagError('TAG_FIELD_TOO_LONG', `holder is longer than ${MAX_HOLDER_CHARS} characters`);
    f.push('scanning', `token=${value.token}`, `holder=${holder}`, `until=${Math.floor(value.leaseUntil)}`);
    f.push(...stampFields(value.stamp), `time=${Math.floor(value.time)}`);
    return f.join(' ');
  }
  const gen = pct(value.generation);
  if (gen.length > MAX_GENERATION_CHARS) {
    throw new TagError('TAG_FIELD_TOO_LONG', `generation ${JSON.stringify(value.generation.slice(0, 40))}... is longer than ${MAX_GENERATION_CHARS} characters`);
  }
  f.push(value.answer, `gen=${gen}`, ...stampFields(value.stamp), `time=${Math.floor(value.time)}`);
  if (value.digest !== undefined) {
    if (!/^[0-9a-f]{64}$/.test(value.digest)) throw new TagError('TAG_BAD_OPTION', 'digest must be a sha256 in lower-case hex');
    f.push(`sha256=${value.digest}`);
  }
  if (value.reason !== undefined && value.reason !== '') f.push(`reason=${cutReason(value.reason)}`);
  return f.join(' ');
}

/** Encode and sign a value for the attribute `xattrName` of `scanner`. */
export function encodeTag(value: TagValue, key: Buffer, xattrName: string, scanner: string): Buffer {
  const body = encodeBody(value);
  return Buffer.from(`${body} mac=${computeMac(key, xattrName, scanner, body)}`, 'ascii');
}

export function verifyTag(tag: DecodedTag, key: Buffer, xattrName: string, scanner: string): boolean {
  return macMatches(key, xattrName, scanner, tag.body, tag.mac);
}

// ---- decoding -------------------------------------------------------------------------------------------------

const RESULT_FIELDS = ['gen', 'ino', 'igen', 'size', 'mtime', 'time', 'sha256', 'reason'] as const;
const RESULT_OPTIONAL = new Set(['sha256', 'reason']);
const SCANNING_FIELDS = ['token', 'holder', 'until', 'ino', 'igen', 'size', 'mtime', 'time'] as const;

class Unparseable extends Error {}
const fail = (problem: string): never => {
  throw new Unparseable(problem);
};

const uint = (name: string, s: string, maxDigits: number): bigint =>
  /^(0|[1-9][0-9]*)$/.test(s) && s.length <= maxDigits ? BigInt(s) : fail(`${name}=${s.slice(0, 24)} is not an unsigned integer`);

const ms = (name: string, s: string): number => Number(uint(name, s, 15));

const text = (name: string, s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return fail(`${name} is not valid percent-encoding`);
  }
};

/** Fields in the order given; optional ones may be missing; nothing unknown, nothing twice. */
function fieldsInOrder(tokens: string[], order: readonly string[], optional: Set<string>): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  for (const tok of tokens) {
    const eq = tok.indexOf('=');
    if (eq <= 0) fail(`field ${JSON.stringify(tok.slice(0, 24))} is not name=value`);
    const name = tok.slice(0, eq);
    const idx = order.indexOf(name, at);
    if (idx < 0) fail(order.includes(name) ? `field ${name} out of order or repeated` : `unknown field ${name.slice(0, 24)}`);
    for (let i = at; i < idx; i++) if (!optional.has(order[i]!)) fail(`field ${order[i]} missing`);
    out.set(name, tok.slice(eq + 1));
    at = idx + 1;
  }
  for (let i = at; i < order.length; i++) if (!optional.has(order[i]!)) fail(`field ${order[i]} missing`);
  return out;
}

function stampOf(f: Map<string, string>): Stamp {
  return {
    ino: uint('ino', f.get('ino')!, 20),
    igen: Number(uint('igen', f.get('igen')!, 10)),
    size: uint('size', f.get('size')!, 20),
    mtimeNs: uint('mtime', f.get('mtime')!, 22),
  };
}

function decodeOrThrow(raw: Buffer): DecodedTag {
  if (raw.length === 0) fail('empty value');
  if (raw.length > MAX_VALUE_BYTES) fail(`value of ${raw.length} bytes (limit ${MAX_VALUE_BYTES})`);
  for (const b of raw) {
    if (b !== 0x20 && (b < 0x21 || b > 0x7e)) fail(`byte 0x${b.toString(16).padStart(2, '0')} in value (binary or not ours)`);
  }
  const textValue = raw.toString('ascii');
  const macAt = textValue.lastIndexOf(' mac=');
  const head = textValue.split(' ', 1)[0]!;
  if (head !== TAG_VERSION) fail(/^v[0-9]+$/.test(head) ? `unknown version ${head}` : `no version prefix (starts with ${JSON.stringify(textValue.slice(0, 16))})`);
  if (macAt < 0) fail('no mac field');
  const body = textValue.slice(0, macAt);
  const mac = textValue.slice(macAt + 5);
  if (!/^[0-9a-f]{64}$/.test(mac)) fail('mac is not 64 hex digits');
  const tokens = body.split(' ');
  const kind = tokens[1];
  if (kind === 'scanning') {
    const f = fieldsInOrder(tokens.slice(2), SCANNING_FIELDS, new Set());
    const token = f.get('token')!;
    if (!/^[0-9a-f]{8,64}$/.test(token)) fail('token is not hex');
    return {
      value: { kind: 'scanning', token, holder: text('holder', f.get('holder')!), leaseUntil: ms('until', f.get('until')!), stamp: stampOf(f), time: ms('time', f.get('time')!) },
      body,
      mac,
    };
  }
  if (kind === 'deny' || kind === 'ok' || kind === 'allow') {
    const f = fieldsInOrder(tokens.slice(2), RESULT_FIELDS, RESULT_OPTIONAL);
    const value: ResultTag = { kind: 'result', answer: kind, generation: text('gen', f.get('gen')!), stamp: stampOf(f), time: ms('time', f.get('time')!) };
    const digest = f.get('sha256');
    if (digest !== undefined) {
      if (!/^[0-9a-f]{64}$/.test(digest)) fail('sha256 is not 64 hex digits');
      value.digest = digest;
    }
    const reason = f.get('reason');
    if (reason !== undefined) value.reason = text('reason', reason);
    return { value, body, mac };
  }
  return fail(`unknown kind ${JSON.stringify(String(kind).slice(0, 24))}`);
}

/** Never throws: a value that does not parse comes back as { ok: false, problem }. */
export function decodeTag(raw: Buffer): DecodeResult {
  try {
    return { ok: true, tag: decodeOrThrow(raw) };
  } catch (err) {
    if (err instanceof Unparseable) return { ok: false, problem: err.message };
    return { ok: false, problem: `decoder failure: ${err instanceof Error ? err.message : String(err)}` };
  }
}
