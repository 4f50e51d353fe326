// Xattr names of verdict tags: <namespace>.scanned-by.<scanner>.
// `trusted.` needs CAP_SYS_ADMIN to read or write: nobody else can see or touch the tags. `user.` is the fallback
// where trusted xattrs are refused; there a file's owner can read and remove its tags (not forge them: the MAC key
// stays root's).
import { TagError } from './errors.js';

export type TagNamespace = 'trusted' | 'user';
export const NAMESPACES: readonly TagNamespace[] = ['trusted', 'user'];

export const isTagNamespace = (v: unknown): v is TagNamespace => v === 'trusted' || v === 'user';

/** Same rule as the actor manifest's name: it becomes part of an xattr name and of the MAC input. */
const SCANNER_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function isScannerName(name: string): boolean {
  return SCANNER_NAME.test(name);
}

export function assertScannerName(name: string, where = 'scanner'): void {
  if (!isScannerName(name)) {
    throw new TagError('TAG_BAD_SCANNER_NAME', `${where}: ${JSON.stringify(name)} is not a scanner name ([a-z0-9][a-z0-9_-]*, at most 64 characters)`);
  }
}

export function tagName(namespace: TagNamespace, scanner: string): string {
  assertScannerName(scanner);
  return `${namespace}.scanned-by.${scanner}`;
}

export interface ParsedTagName {
  namespace: TagNamespace;
  /** The part after `scanned-by.`; may be an invalid scanner name (someone else wrote it): check isScannerName. */
  scanner: string;
}

/** Split an xattr name of ours; null for every other attribute. */
export function parseTagName(name: string): ParsedTagName | null {
  for (const namespace of NAMESPACES) {
    const prefix = `${namespace}.scanned-by.`;
    if (name.startsWith(prefix)) return { namespace, scanner: name.slice(prefix.length) };
  }
  return null;
}
