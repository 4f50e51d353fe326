// ScanFile over a descriptor the daemon owns: positioned reads (pread), never the file offset, so any number of
// actors in any number of worker threads can read the same fd at once. The fd is NOT ours: never close it here.
import { read } from 'node:fs';
import type { ScanFile } from './actor.js';
import { statOf, xattrNamesOf, xattrOf } from './file-facts.js';

export const DEFAULT_CHUNK_SIZE = 1 << 20;
/** A process-group slot whose program is being spawned (pid not known yet). */
export const SPAWNING = -1;
export const GROUP_MARKER_ENV = 'BLESSD_SCAN_TASK';

function pread(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

/** Fill `length` bytes at `position` unless end of file comes first; returns the bytes actually read. */
async function readFully(fd: number, position: number, length: number): Promise<Buffer> {
  // A fresh buffer per call: consumers keep chunks (a child's stdin pipe holds them until flushed).
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const n = await pread(fd, buffer, filled, length - filled, position + filled);
    if (n === 0) break; // end of file (the file shrank since it was stat'ed)
    filled += n;
  }
  return filled === length ? buffer : buffer.subarray(0, filled);
}

export interface ScanFileInit {
  fd: number;
  size: number;
  path: string;
  /** Default chunk size for chunks() (1 MiB). */
  chunkSize?: number;
  /** The task's shared process-group slots (tasks.ts): what trackProcessGroup() registers into. */
  groups?: Int32Array;
  /** The task's marker, put into spawned programs' environment as BLESSD_SCAN_TASK. */
  marker?: string;
}

/**
 * Reads stop at `size`, the size the daemon stamped: a file that grows during the scan is being written and will be
 * dirtied (and rescanned) anyway, and a bounded read cannot be kept busy forever by a writer.
 */
export function fdScanFile(init: ScanFileInit): ScanFile {
  const { fd, size, path } = init;
  const defaultChunk = init.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isSafeInteger(defaultChunk) || defaultChunk <= 0) throw new RangeError('chunkSize must be a positive integer');
  const groups = init.groups;
  return {
    fd,
    size,
    path,
    stat: () => statOf(fd),
    xattr: (name) => xattrOf(fd, name),
    xattrNames: () => xattrNamesOf(fd),
    trackProcessGroup() {
      // Lock-free: a slot goes 0 -> SPAWNING (-1) -> pgid -> 0 here; the main thread only takes entries back
      // (exchange to 0) when it kills the groups, and finds a SPAWNING one by the marker in the environment.
      const env: Record<string, string> = init.marker ? { [GROUP_MARKER_ENV]: init.marker } : {};
      let at = -1;
      if (groups) {
        for (let i = 0; i < groups.length && at < 0; i++) if (Atomics.compareExchange(groups, i, 0, SPAWNING) === 0) at = i;
      }
      let pgid = SPAWNING;
      return {
        env,
        started(pid) {
          if (at < 0 || !Number.isSafeInteger(pid) || pid <= 1) return;
          if (Atomics.compareExchange(groups!, at, SPAWNING, pid) === SPAWNING) pgid = pid;
        },
        done() {
          if (at >= 0) Atomics.compareExchange(groups!, at, pgid, 0);
          at = -1;
        },
      };
    },
    async read(offset, length) {
      if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
        throw new RangeError(`read(${offset}, ${length}): offset and length must be non-negative integers`);
      }
      return readFully(fd, offset, Math.max(0, Math.min(length, size - offset)));
    },
    async *chunks(chunkSize = defaultChunk) {
      if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError('chunkSize must be a positive integer');
      for (let position = 0; position < size; ) {
        const want = Math.min(chunkSize, size - position);
        const chunk = await readFully(fd, position, want);
        if (chunk.length > 0) yield chunk;
        if (chunk.length < want) return; // end of file came early: the file shrank
        position += want;
      }
    },
  };
}
