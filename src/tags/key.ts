// The MAC key: 32 random bytes in a root-only file. Whoever reads it can forge tags, so a key file that others can
// read is refused rather than used. Created on first use, atomically: written to a temp file and linked into
// place, so two processes starting at once end up with one key (the loser of link() reads the winner's).
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TagError, errnoCode, messageOf } from './errors.js';

export const KEY_BYTES = 32;

export interface KeyOptions {
  /** Create the key (and its directory, mode 0700) if it does not exist. Default true. */
  create?: boolean;
}

async function readKey(path: string): Promise<Buffer> {
  const st = await stat(path);
  if (!st.isFile()) throw new TagError('TAG_KEY_FILE', `key file ${path}: not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new TagError('TAG_KEY_FILE', `key file ${path}: mode ${(st.mode & 0o777).toString(8)} lets others read it (anyone who can read it can forge tags); chmod 600 it`);
  }
  const key = await readFile(path);
  if (key.length !== KEY_BYTES) throw new TagError('TAG_KEY_FILE', `key file ${path}: ${key.length} bytes, expected ${KEY_BYTES}`);
  return key;
}

async function createKey(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(randomBytes(KEY_BYTES));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await link(tmp, path); // fails with EEXIST if another process won: then its key is the key
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Read the key at `path`, creating it on first use. Errors name the path. */
export async function loadTagKey(path: string, options: KeyOptions = {}): Promise<Buffer> {
  const create = options.create ?? true;
  try {
    return await readKey(path);
  } catch (err) {
    if (err instanceof TagError) throw err;
    if (errnoCode(err) !== 'ENOENT') throw new TagError('TAG_KEY_FILE', `key file ${path}: ${messageOf(err)}`, err);
    if (!create) throw new TagError('TAG_KEY_FILE', `key file ${path} does not exist (blessd creates it on first start)`, err);
  }
  try {
    await createKey(path);
    return await readKey(path);
  } catch (err) {
    if (err instanceof TagError) throw err;
    throw new TagError('TAG_KEY_FILE', `key file ${path}: cannot create: ${messageOf(err)}`, err);
  }
}
