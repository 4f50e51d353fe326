// Which xattr namespace a filesystem lets us use. trusted. needs CAP_SYS_ADMIN and a filesystem that keeps it;
// where it is refused we fall back to user. and say what that costs.
import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from '../gate/addon.js';
import { TagError, errnoCode, messageOf } from './errors.js';
import type { TagNamespace } from './names.js';

export interface NamespaceProbe {
  namespace: TagNamespace;
  /** Set when the namespace differs from the one preferred: what changes for the site. */
  warning?: string;
}

const COST_OF_USER =
  'verdict tags go to user.scanned-by.*: file owners can then see and remove their files\' tags (forcing a rescan), ' +
  'though not forge them (the MAC key stays root\'s)';

function tryNamespace(fd: number, ns: TagNamespace): string | null {
  const name = `${ns}.blessd-probe`;
  try {
    native.setXattr(fd, name, Buffer.from('probe'));
    native.removeXattr(fd, name);
    return null;
  } catch (err) {
    return errnoCode(err) ?? messageOf(err);
  }
}

/** Try set+remove of a test xattr on a temp file in `dir` (removed afterwards). */
export async function probeNamespace(dir: string, preferred: TagNamespace = 'trusted'): Promise<NamespaceProbe> {
  const other: TagNamespace = preferred === 'trusted' ? 'user' : 'trusted';
  const path = join(dir, `.blessd-xattr-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    throw new TagError('TAG_NAMESPACE_UNAVAILABLE', `cannot probe xattrs in ${dir}: creating a test file failed: ${messageOf(err)}`, err);
  }
  try {
    const first = tryNamespace(fh.fd, preferred);
    if (first === null) return { namespace: preferred };
    const second = tryNamespace(fh.fd, other);
    if (second === null) {
      const warning =
        other === 'user'
          ? `${dir}: trusted xattrs refused (${first}); ${COST_OF_USER}`
          : `${dir}: user xattrs refused (${first}); using trusted.scanned-by.* instead (root only, nothing lost)`;
      return { namespace: other, warning };
    }
    throw new TagError('TAG_NAMESPACE_UNAVAILABLE', `${dir}: no xattr namespace usable for tags: ${preferred}. refused (${first}), ${other}. refused (${second})`);
  } finally {
    await fh.close().catch(() => {});
    await unlink(path).catch(() => {});
  }
}
