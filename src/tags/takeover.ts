// Taking over a tag that is not a live lease (an expired lease, an old result, junk) — exclusively.
// Xattrs have no compare-and-swap: XATTR_REPLACE succeeds for every racer, and remove-then-create lets a slow racer
// remove the fast one's fresh lease (measured: ~1% of files leased twice with two processes in lock-step). So the
// takeover is serialised by a second attribute created with XATTR_CREATE, which the kernel grants to one racer:
//   <ns>.blessd-takeover.<scanner> = "<holder> <ms> <token>"
// The winner re-reads the tag, replaces it only if it is still the value it judged, and removes the lock. The
// critical section is a few syscalls; a lock older than LOCK_STALE_MS was left by a process that died inside it.
// The lock is outside scanned-by.* on purpose: clear() (dirty) leaves it alone, so a dirty transition cannot free
// it under its holder; the tag itself is what clear() removes, and REPLACE then fails with ENODATA.
import { native } from '../gate/addon.js';
import { TagError, errnoCode, messageOf } from './errors.js';
import type { TagNamespace } from './names.js';

export const LOCK_STALE_MS = 10_000;

export type TakeoverResult = { status: 'taken' } | { status: 'retry' } | { status: 'busy'; holder: string };

export function takeoverLockName(namespace: TagNamespace, scanner: string): string {
  return `${namespace}.blessd-takeover.${scanner}`;
}

function call<T>(fn: () => T, what: string, fd: number): T {
  try {
    return fn();
  } catch (err) {
    throw new TagError('TAG_XATTR_IO', `${what} on fd ${fd}: ${messageOf(err)}`, err);
  }
}

/** Replace `seen` at `name` with `value`, unless someone else is taking it over or it changed meanwhile. */
export function takeOver(fd: number, namespace: TagNamespace, scanner: string, name: string, seen: Buffer, value: Buffer, holder: string, token: string): TakeoverResult {
  const lock = takeoverLockName(namespace, scanner);
  const now = Date.now();
  const mine = Buffer.from(`${holder} ${now} ${token}`);
  try {
    native.setXattr(fd, lock, mine, native.XATTR_CREATE);
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw new TagError('TAG_XATTR_IO', `setxattr ${lock} on fd ${fd}: ${messageOf(err)}`, err);
    const other = call(() => native.getXattr(fd, lock), `getxattr ${lock}`, fd);
    if (other === null) return { status: 'retry' }; // released meanwhile
    const [otherHolder = '?', since = '0'] = other.toString('latin1').split(' ');
    const age = now - Number(since);
    if (!(age >= 0 && age < LOCK_STALE_MS)) {
      // Left by a process that died mid-takeover (or garbage): remove it if it is still that value, then retry.
      const again = call(() => native.getXattr(fd, lock), `getxattr ${lock}`, fd);
      if (again !== null && again.equals(other)) call(() => native.removeXattr(fd, lock), `removexattr ${lock}`, fd);
      return { status: 'retry' };
    }
    return { status: 'busy', holder: otherHolder };
  }
  try {
    const current = call(() => native.getXattr(fd, name), `getxattr ${name}`, fd);
    if (current === null || !current.equals(seen)) return { status: 'retry' }; // removed (dirty) or changed: judge again
    try {
      native.setXattr(fd, name, value, native.XATTR_REPLACE);
      return { status: 'taken' };
    } catch (err) {
      if (errnoCode(err) === 'ENODATA') return { status: 'retry' }; // a dirty transition removed it just now
      throw new TagError('TAG_XATTR_IO', `setxattr ${name} on fd ${fd}: ${messageOf(err)}`, err);
    }
  } finally {
    const held = call(() => native.getXattr(fd, lock), `getxattr ${lock}`, fd);
    if (held !== null && held.equals(mine)) call(() => native.removeXattr(fd, lock), `removexattr ${lock}`, fd);
  }
}
