// Content digest for content stamp mode: sha256 of the whole file, read through the given fd (no re-open by path,
// so no race with rename/unlink) in large positional reads, asynchronously (the daemon's main thread must not block).
import { createHash } from 'node:crypto';
import { read } from 'node:fs';
import { promisify } from 'node:util';
import { TagError, messageOf } from './errors.js';

const preadAsync = promisify(read);
export const DIGEST_CHUNK = 1 << 20;

export async function digestFd(fd: number, chunkSize = DIGEST_CHUNK): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(chunkSize);
  let position = 0;
  for (;;) {
    let n: number;
    try {
      ({ bytesRead: n } = await preadAsync(fd, buf, 0, chunkSize, position));
    } catch (err) {
      throw new TagError('TAG_XATTR_IO', `reading fd ${fd} at ${position} for its digest: ${messageOf(err)}`, err);
    }
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    position += n;
  }
  return hash.digest('hex');
}
