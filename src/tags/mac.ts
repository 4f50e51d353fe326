// The MAC of a tag: HMAC-SHA-256 under the root-only key, over the value's text without the mac field, plus the
// scanner name and the full xattr name. Binding the names means a value copied to another scanner's attribute, or
// from user. to trusted., does not verify.
// Computed natively (native/tags/verify.cc tag_mac, the definition the reader thread verifies with): one codec,
// and no createHmac object per call (several per scanned file). test/tags-mac.test.ts holds it to node's HMAC.
import { timingSafeEqual } from 'node:crypto';
import { native } from '../gate/addon.js';

/** Domain separation: this key signs nothing else, but say what is signed anyway. */
export const MAC_DOMAIN = 'blessd-tag-mac-v1';

export function computeMac(key: Buffer, xattrName: string, scanner: string, body: string): string {
  return native.tagMac(key, xattrName, scanner, body);
}

export function macMatches(key: Buffer, xattrName: string, scanner: string, body: string, macHex: string): boolean {
  const want = Buffer.from(computeMac(key, xattrName, scanner, body), 'hex');
  const got = Buffer.from(macHex, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}
