// Small fs calls whose failure means "nothing to show": a path for display, an fd that may be closed already.
import { closeSync, readlinkSync } from 'node:fs';

const strict = new TextDecoder('utf-8', { fatal: true });

/**
 * A file name for logs and notices. Linux names are bytes: one that is not valid UTF-8 would print with U+FFFD and
 * could not be found again, so such a name is escaped like a C string instead — each byte that is not part of a
 * valid UTF-8 sequence as \xNN, and a backslash as \\. Valid names are returned as they are.
 */
export function displayPath(bytes: Buffer): string {
  try {
    return strict.decode(bytes);
  } catch {
    /* not UTF-8: escape below */
  }
  let out = '';
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len > 0 && i + len <= bytes.length) {
      try {
        const ch = strict.decode(bytes.subarray(i, i + len));
        out += ch === '\\' ? '\\\\' : ch;
        i += len;
        continue;
      } catch {
        /* an invalid sequence: its lead byte is escaped, the rest looked at again */
      }
    }
    out += `\\x${b.toString(16).padStart(2, '0')}`;
    i++;
  }
  return out;
}

/** readlink for display (displayPath), or undefined when there is nothing to read. */
export function readlinkQuiet(path: string): string | undefined {
  try {
    return displayPath(readlinkSync(path, { encoding: 'buffer' }));
  } catch {
    return undefined;
  }
}

export function closeQuiet(fd: number) {
  try {
    closeSync(fd);
  } catch {
    /* already closed */
  }
}
