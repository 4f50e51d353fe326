// The one place that loads the native addon; everything else imports its typed face from here.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeGateConstructor, NativeJudgedTag, NativeTagPolicy } from './types.js';

export interface FileHandle {
  type: number;
  handle: Buffer;
  mountId: number;
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** A tag store's native writer (native/tags/write.cc): opaque, made by tagWriter. */
export type TagWriterHandle = { readonly __tagWriter: unique symbol };

export interface NativeAddon {
  getXattr(target: number | string, name: string): Buffer | null;
  setXattr(target: number | string, name: string, value: Buffer, flags?: number): void;
  removeXattr(target: number | string, name: string): boolean;
  listXattr(target: number | string): string[];
  XATTR_CREATE: number;
  XATTR_REPLACE: number;
  inodeGeneration(fd: number): number | null;
  fileHandle(target: number | string): FileHandle;
  openByHandle(mountFd: number, type: number, handle: Buffer, flags?: number): number;
  dupFd(fd: number): number;
  /** close(2) of a descriptor dupFd made (from a worker thread without node:fs's unmanaged-fd warning). */
  closeFd(fd: number): void;
  /** sendmsg with SCM_RIGHTS on a connected unix socket: `fd` rides on the first byte of `bytes`. Returns bytes sent. */
  sendFd(socketFd: number, fd: number, bytes: Buffer): number;
  /** getsockopt(SO_PEERCRED): who connected to a unix socket. */
  peerCred(socketFd: number): PeerCred;
  /** One datagram to a unix socket path ('@name': abstract namespace), for systemd's notify protocol. */
  sendDatagram(path: string, bytes: Buffer): number;
  /** Every tag of a namespace on an open file, judged by the native reader (native/tags): for tests and tools. */
  tagsJudge(fd: number, opts: { namespace: 'trusted' | 'user'; key: Buffer; generations?: Record<string, string>; ctime?: boolean }): NativeJudgedTag[];
  /** What the gate's reader thread would decide for this file from its tags alone. */
  tagsSettle(fd: number, policy: NativeTagPolicy): 'allow' | 'deny' | 'unknown';
  /** A pidfd for a child process (native/proc/pidfd.cc), or -1 if it is gone. */
  pidfdOpen(pid: number): number;
  /** waitid(P_PIDFD, WNOHANG): 'reaped', 'running' (ask again), or 'gone' (reaped elsewhere). The caller closes the fd. */
  pidfdReap(fd: number): 'reaped' | 'running' | 'gone';
  /** HMAC-SHA-256 of a tag, hex (native/tags/verify.cc tag_mac; src/tags/mac.ts says over what). */
  tagMac(key: Buffer, xattrName: string, scanner: string, body: string): string;
  /** fstat + FS_IOC_GETVERSION in one call (native/tags/stamp.cc): out = [ino, igen (0: none), size, mtime ns, ctime ns]. */
  tagStamp(fd: number, out: BigInt64Array): void;
  /** The settings a TagStore writes leases and results with (native/tags/write.cc). */
  tagWriter(options: { namespace: 'trusted' | 'user'; key: Buffer; holder: string; leaseMs: number; ctime: boolean }): TagWriterHandle;
  /**
   * Stamp + lease + XATTR_CREATE: the token when leased, or (a tag is already there) the token and lease value to
   * take it over with. out = [ino, igen, size, mtime ns, ctime ns, lease end ms] of the stamp the lease binds.
   */
  tagBegin(writer: TagWriterHandle, fd: number, scanner: string, out: BigInt64Array): string | { token: string; value: Buffer };
  /**
   * The conditional result write over our lease: 0 written, 1 removed meanwhile (ENODATA), 2 stamp changed (lease
   * given back), 3 the lease is not ours, 4 no tag and no own lease (`bound`: our lease's stamp, or null).
   */
  tagFinish(writer: TagWriterHandle, fd: number, scanner: string, token: string, answer: string, reason: string | undefined, generation: string, digest: string | undefined, bound: BigInt64Array | null): number;
  /** readlink of /proc/self/fd/<fd> (native/proc/fd_path.cc), for display only; null when there is none. */
  fdPath(fd: number): string | null;
  /** Name the calling thread (prctl PR_SET_NAME, first 15 bytes), for /proc, top and perf. */
  setThreadName(name: string): void;
  Gate: NativeGateConstructor;
  /**
   * From a pool worker: conclude a cold file allow on the gate with this lane id (native/fanotify/lane.cc) — the
   * stamp-checked bless and the answers of the inode's events JS holds. Null: not concluded (the main thread
   * decides); false: not concluded because the file changed since it was judged; else the ids of the events answered.
   */
  laneConclude(laneId: number, epoch: number, seq: number, fd: number, size: bigint, mtimeNs: bigint, ctimeNs: bigint): number[] | null | false;
  /**
   * From a pool worker (native/fanotify/lane_queue.cc): serve this pool's native lane; `onWake` is called on this
   * thread when cold inodes wait and the worker is idle. Returns the worker's id for laneTake.
   */
  laneAttach(pool: number, onWake: () => void): number;
  /** Up to `max` queued cold inodes for this worker: jobs as [ticket, fd, seq, pid] (the fds are the worker's to
   * close; pid: the first accessor's); null when none waits (the worker is then idle until woken). */
  laneTake(worker: number, max: number): { lane: number; epoch: number; jobs: number[] } | null;
  /** Finish a job: `allow` with its judged stamp concludes it here (bless + answers) if nothing moved; else (and for
   * anything not an allow) its events go to JS as perm records. Concluded here: the events answered, as [pid, uid,
   * waitedUs, ...]; false: handed over (or gone). */
  laneFinish(lane: number, epoch: number, ticket: number, allow: boolean, size?: bigint, mtimeNs?: bigint, ctimeNs?: bigint): number[] | false;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('blessd: cannot find the package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

const require = createRequire(import.meta.url);
const addonPath = join(packageRoot(), 'build', 'Release', 'blessd_native.node');
if (!existsSync(addonPath)) {
  throw new Error(`blessd: native addon missing at ${addonPath}; run \`npm ci\` (or \`npx node-gyp rebuild\`)`);
}

export const native: NativeAddon = require(addonPath);
