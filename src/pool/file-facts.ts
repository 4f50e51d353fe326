// What the worker lends actors beyond Node's own API (actor API v1): fstat and extended attributes of the scanned
// descriptor, and descriptor passing over unix sockets. Here and only here, so that no actor imports the addon:
// an actor written against src/pool/actor.ts runs in any blessd that speaks its API.
import { fstat } from 'node:fs';
import type { NativeAddon } from '../gate/addon.js';
import type { ScanFileStat, UnixSockets } from './actor.js';

// Loaded at first use: the main thread imports the pool (and this file with it) without needing the addon.
let addon: Promise<NativeAddon> | undefined;
const native = (): Promise<NativeAddon> => (addon ??= import('../gate/addon.js').then((m) => m.native));

export function statOf(fd: number): Promise<ScanFileStat> {
  return new Promise((resolve, reject) => {
    fstat(fd, { bigint: true }, (err, s) => {
      if (err) return reject(err);
      resolve({
        dev: Number(s.dev),
        ino: Number(s.ino),
        mode: Number(s.mode),
        nlink: Number(s.nlink),
        uid: Number(s.uid),
        gid: Number(s.gid),
        size: Number(s.size),
        mtimeMs: Number(s.mtimeMs),
        ctimeMs: Number(s.ctimeMs),
        mtimeNs: s.mtimeNs,
        ctimeNs: s.ctimeNs,
      });
    });
  });
}

/** A filesystem without xattrs (or without this namespace) simply has none: null, not an error. */
const NONE = new Set(['ENODATA', 'EOPNOTSUPP', 'ENOTSUP']);

export async function xattrOf(fd: number, name: string): Promise<Buffer | null> {
  if (typeof name !== 'string' || name === '') throw new TypeError('xattr(name): name must be a non-empty string');
  try {
    return (await native()).getXattr(fd, name);
  } catch (err) {
    if (NONE.has((err as { code?: string }).code ?? '')) return null;
    throw err;
  }
}

export async function xattrNamesOf(fd: number): Promise<string[]> {
  try {
    return (await native()).listXattr(fd);
  } catch (err) {
    if (NONE.has((err as { code?: string }).code ?? '')) return [];
    throw err;
  }
}

/** For the ActorContext: the addon is loaded before init, so that the calls themselves stay synchronous. */
export async function unixSockets(): Promise<UnixSockets> {
  const n = await native();
  return {
    sendFd: (socketFd, fd, bytes) => n.sendFd(socketFd, fd, bytes),
    peerCred: (socketFd) => n.peerCred(socketFd),
  };
}
