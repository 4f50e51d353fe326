// The fleet key: the same secret on every host of a fleet (the admin puts it there; blessd never creates it, a
// key of its own would share nothing). Whoever reads it can forge shared verdicts for the whole fleet, so a key
// file that others can read is refused, as the tag key is (src/tags/key.ts).
import { readFile, stat } from 'node:fs/promises';

export const FLEET_KEY_MIN_BYTES = 32;

export class FleetKeyError extends Error {
  readonly code = 'FLEET_KEY_FILE';
}

export async function loadFleetKey(path: string): Promise<Buffer> {
  let mode: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new FleetKeyError(`fleet key file ${path}: not a regular file`);
    mode = st.mode;
  } catch (err) {
    if (err instanceof FleetKeyError) throw err;
    throw new FleetKeyError(`fleet key file ${path}: ${(err as Error).message} (make one with: head -c 32 /dev/urandom > ${path}; chmod 600 ${path}; and copy it to every host)`);
  }
  if ((mode & 0o077) !== 0) throw new FleetKeyError(`fleet key file ${path}: mode ${(mode & 0o777).toString(8)} lets others read it (anyone who can read it can forge shared verdicts); chmod 600 it`);
  const key = await readFile(path);
  if (key.length < FLEET_KEY_MIN_BYTES) throw new FleetKeyError(`fleet key file ${path}: ${key.length} bytes, at least ${FLEET_KEY_MIN_BYTES} needed`);
  return key;
}
