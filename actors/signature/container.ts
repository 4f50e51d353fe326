// ClamAV's .cvd / .cld / .cud containers: a 512-byte text header ("ClamAV-VDB:time:version:signatures:level:md5:
// dsig:builder:stime", space-padded), then a tar archive, gzip-compressed (.cvd, and .cld as freshclam writes it
// today) or plain (older .cld). The digital signature in the header is not checked here: the files are as
// trustworthy as the directory they sit in (root's); the header's MD5 of the archive is checked, so a truncated
// or corrupted download is an error, not half a database.
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';

export interface ContainerFile {
  name: string;
  bytes: Buffer;
}

export class ContainerError extends Error {}

const HEADER = 512;
const BLOCK = 512;

function octal(b: Buffer, start: number, length: number): number {
  const s = b.subarray(start, start + length).toString('latin1').replace(/\0.*$/s, '').trim();
  return s === '' ? 0 : parseInt(s, 8);
}

/** The member files of a container (regular files only). */
export function readContainer(bytes: Buffer): ContainerFile[] {
  if (bytes.length < HEADER || !bytes.subarray(0, 11).equals(Buffer.from('ClamAV-VDB:'))) {
    throw new ContainerError('not a ClamAV container (no "ClamAV-VDB:" header)');
  }
  const header = bytes.subarray(0, HEADER).toString('latin1').trimEnd();
  const fields = header.split(':');
  const body = bytes.subarray(HEADER);
  const md5 = fields[5];
  if (md5 && /^[0-9a-f]{32}$/i.test(md5) && createHash('md5').update(body).digest('hex') !== md5.toLowerCase()) {
    throw new ContainerError(`the archive does not match the header's MD5 (truncated or corrupted)`);
  }
  let tar: Buffer;
  try {
    tar = body.length >= 2 && body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body) : body;
  } catch (err) {
    throw new ContainerError(`bad gzip data: ${(err as Error).message}`);
  }
  const files: ContainerFile[] = [];
  for (let at = 0; at + BLOCK <= tar.length; ) {
    const h = tar.subarray(at, at + BLOCK);
    if (h.every((x) => x === 0)) break; // end of archive
    const name = h.subarray(0, 100).toString('latin1').replace(/\0.*$/s, '');
    const size = octal(h, 124, 12);
    const type = String.fromCharCode(h[156]!);
    const start = at + BLOCK;
    if (!Number.isSafeInteger(size) || size < 0 || start + size > tar.length) throw new ContainerError(`tar member ${name}: bad size`);
    if (type === '0' || type === '\0') files.push({ name, bytes: tar.subarray(start, start + size) });
    at = start + Math.ceil(size / BLOCK) * BLOCK;
  }
  return files;
}
