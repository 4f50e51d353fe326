// The tag store's error catalogue. Every error carries a stable `code` (callers branch on it, never on messages)
// and a message that names the place: the path, the fd, the xattr, the key.
import { BlessdError } from '../errors.js';

export type TagErrorCode =
  | 'TAG_BAD_SCANNER_NAME' // a scanner name that cannot be part of an xattr name
  | 'TAG_BAD_OPTION' // a TagStore option out of range (names the option)
  | 'TAG_FIELD_TOO_LONG' // a generation or holder that would make the value exceed the size limit
  | 'TAG_KEY_FILE' // the MAC key file cannot be created or read, has the wrong size or mode
  | 'TAG_STATE_FILE' // <stateDir>/generations.json cannot be read, parsed or written
  | 'TAG_NAMESPACE_UNAVAILABLE' // neither trusted. nor user. xattrs can be set in a directory
  | 'TAG_XATTR_IO'; // an xattr or stat call failed for a reason other than the expected ones

export class TagError extends BlessdError<TagErrorCode> {
  /** `cause`: the underlying failure (an errno error from node or the addon), kept for logs. */
  constructor(code: TagErrorCode, message: string, cause?: unknown) {
    super(code, message, { cause });
  }
}

/** The `.code` of an error thrown by node or the addon ('ENODATA', 'EEXIST'...), or undefined. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
