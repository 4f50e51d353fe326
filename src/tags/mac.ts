// The MAC of a tag: HMAC-SHA-256 under the root-only key, over the value's text without the mac field, plus the
// scanner name and the full xattr name. Binding the names means a value copied to another scanner's attribute, or
// from user. to trusted., does not verify.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Domain separation: this key signs nothing else, but say what is signed anyway. */
const DOMAIN = 'blessd-tag-mac-v1';

export function computeMac(key: Buffer, xattrName: string, scanner: string, body: string): string {
  return createHmac('sha256', key).update(`${DOMAIN}\0${xattrName}\0${scanner}\0${body}`, 'utf8').digest('hex');
}

export function macMatches(key: Buffer, xattrName: string, scanner: string, body: string, macHex: string): boolean {
  const want = Buffer.from(computeMac(key, xattrName, scanner, body), 'hex');
  const got = Buffer.from(macHex, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}
