// The value of a shared verdict in the store, and its MAC. A value is one line of text:
//   1 <answer> <time ms> <origin host> <reason, base64url or -> <mac, base64url>
// The leading field is the format version: a value of another version is refused, never guessed at. The MAC is
// HMAC-SHA-256 under the fleet key over a domain string, the full store key (scanner, generation and digest: a
// value copied to another content, scanner or generation does not verify) and the value without its MAC. Whoever
// can write to the store but lacks the key can make hosts scan (refused values are scanned locally), never make
// content pass.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { isAnswerKind, type Answer } from '../policy/answer.js';

export const VALUE_VERSION = '1';
const MAC_DOMAIN = 'blessd-fleet-value-v1';
/** Longer values are refused unread (a reason is short; a store is not a place for blobs). */
export const MAX_VALUE_BYTES = 4096;

export interface SharedVerdict {
  answer: Answer;
  time: number;
  origin: string;
}

export type Decoded = { ok: true; verdict: SharedVerdict } | { ok: false; why: string };

function mac(fleetKey: Buffer, storeKey: string, body: string): Buffer {
  return createHmac('sha256', fleetKey).update(MAC_DOMAIN).update('\0').update(storeKey).update('\0').update(body).digest();
}

/** `origin` is this host's name: no spaces (it is one field). */
export function encodeValue(fleetKey: Buffer, storeKey: string, answer: Answer, origin: string, time = Date.now()): string {
  const reason = answer.reason === undefined ? '-' : Buffer.from(answer.reason).toString('base64url');
  const body = `${VALUE_VERSION} ${answer.answer} ${time} ${origin.replace(/\s+/g, '_') || '-'} ${reason}`;
  return `${body} ${mac(fleetKey, storeKey, body).toString('base64url')}`;
}

export function decodeValue(fleetKey: Buffer, storeKey: string, raw: string | Buffer): Decoded {
  const text = typeof raw === 'string' ? raw : raw.toString('latin1');
  if (text.length > MAX_VALUE_BYTES) return { ok: false, why: `value of ${text.length} bytes (at most ${MAX_VALUE_BYTES})` };
  const fields = text.split(' ');
  if (fields[0] !== VALUE_VERSION) return { ok: false, why: `format version ${JSON.stringify(fields[0]?.slice(0, 16))}, not ${VALUE_VERSION}` };
  if (fields.length !== 6) return { ok: false, why: `${fields.length} fields, not 6` };
  const [, answer, time, origin, reason, macText] = fields as [string, string, string, string, string, string];
  const body = fields.slice(0, 5).join(' ');
  const want = mac(fleetKey, storeKey, body);
  const got = Buffer.from(macText, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, why: 'bad MAC (forged, or another fleet key)' };
  // Past the MAC the value is ours; still checked, so that a bug elsewhere cannot become an answer.
  if (!isAnswerKind(answer)) return { ok: false, why: `answer ${JSON.stringify(answer)}` };
  if (!/^\d{1,16}$/.test(time)) return { ok: false, why: 'bad time' };
  const a: Answer = reason === '-' ? { answer } : { answer, reason: Buffer.from(reason, 'base64url').toString() };
  return { ok: true, verdict: { answer: a, time: Number(time), origin } };
}

/** `blessd:v1:{scanner}:{generation}:{sha256}`: the scanner and its generation name what the answer is about. */
export function storeKey(scanner: string, generation: string, sha256: string): string {
  return `blessd:v1:${scanner}:${generation}:${sha256}`;
}
