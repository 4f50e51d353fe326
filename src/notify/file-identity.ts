// Who a file is, in the forms subscribers and scanners can use without trusting a path: (fsid, dev, ino) and the
// kernel file handle (for open_by_handle_at). Built from the daemon's own descriptor, so a rename or unlink in
// between does not make a notice name the wrong file.
import { fstatSync } from 'node:fs';
import { hostname } from 'node:os';
import { native } from '../gate/addon.js';

export interface FileIdentity {
  /** statfs f_fsid as 16 hex digits (the same spelling as fanotify's change records), or null if not guarded. */
  fsid: string | null;
  dev: number;
  ino: number;
  /** base64 of the handle bytes; null where the filesystem gives none. */
  handle: string | null;
  handleType: number | null;
  mountId: number | null;
}

/** fsid of each guarded filesystem by st_dev, filled from the gate's marks. */
export type FsidTable = ReadonlyMap<number, string>;

export function identify(fd: number, fsids: FsidTable): FileIdentity {
  const st = fstatSync(fd);
  let handle: string | null = null;
  let handleType: number | null = null;
  let mountId: number | null = null;
  try {
    const h = native.fileHandle(fd);
    handle = h.handle.toString('base64');
    handleType = h.type;
    mountId = h.mountId;
  } catch {
    /* EOPNOTSUPP: a filesystem without handles; path and (dev, ino) still say it */
  }
  return { fsid: fsids.get(st.dev) ?? null, dev: st.dev, ino: st.ino, handle, handleType, mountId };
}

const HOST = hostname();

/**
 * The notice the daemon emits for one machine's notify(): the detail (path, cleared, verdict...) plus the file's
 * identity when the machine passed its descriptor. Never throws: a file that vanished still gets its notice.
 */
export function buildNotice(kind: 'dirty' | 'verdict', detail: Record<string, unknown>, fsids: FsidTable): { event: 'dirty' | 'verdict'; time: number; [k: string]: unknown } {
  const { fd, ...rest } = detail;
  let id: Partial<FileIdentity> = {};
  if (typeof fd === 'number') {
    try {
      const { mountId: _m, ...who } = identify(fd, fsids);
      id = who;
    } catch {
      /* closed meanwhile: the path alone */
    }
  }
  return { event: kind, time: Date.now(), host: HOST, ...id, ...rest };
}
