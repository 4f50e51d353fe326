// Overview — opening a user's file for judging without ever blocking on it.
//
// The main thread must never wait on a file a user controls: opening a FIFO for reading waits for a writer (forever,
// if none comes), a device's open runs its driver, a socket cannot be opened at all. Only regular files are judged,
// and we learn what a file is before opening it for reading: open_by_handle_at(O_PATH) pins the inode without
// running any open routine, fstat on it says what it is, and only a regular file is reopened readable through
// /proc/self/fd (the same inode: no race with a rename or a swap in between). O_NONBLOCK stays on the readable open
// as a second line.
import { closeSync, constants as fsc, fstatSync, openSync } from 'node:fs';
import { native } from '../gate/addon.js';

/** Linux O_PATH (not in node's fs.constants). */
export const O_PATH = 0o10000000;
const READ_FLAGS = fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY;

/** A readable fd for the regular file behind a change event's handle; undefined if gone or not a regular file. */
export function openRegularByHandle(mountFd: number, handleType: number, handle: Buffer): number | undefined {
  let pathFd: number;
  try {
    pathFd = native.openByHandle(mountFd, handleType, handle, O_PATH);
  } catch {
    return undefined; // deleted meanwhile (ESTALE): nothing left to judge or clear
  }
  try {
    if (!fstatSync(pathFd).isFile()) return undefined;
    return openSync(`/proc/self/fd/${pathFd}`, READ_FLAGS);
  } catch {
    return undefined;
  } finally {
    closeSync(pathFd);
  }
}
