// The fleet key: the same secret on every host of a fleet (the admin puts it there; blessd never creates it, a
// key of its own would share nothing). Whoever reads it can forge shared verdicts for the whole fleet, so a key
// file that others can read is refused, as the tag key is (src/tags/key.ts). Read at start and by `blessd check`;
// every problem is a FleetKeyError naming the config key and the file (`fleet.keyFile PATH: …`).
import { readFile, stat } from 'node:fs/promises';
import { BlessdError } from '../errors.js';

export const FLEET_KEY_MIN_BYTES = 32;

export class FleetKeyError extends BlessdError<'FLEET_KEY_FILE'> {
  constructor(message: string, cause?: unknown) {
    super('FLEET_KEY_FILE', message, cause === undefined ? undefined : { cause });
  }
}

const MAKE_ONE = (path: string) => `make one with: head -c 32 /dev/urandom > ${path}; chmod 600 ${path}; and copy it to every host`;

export async function loadFleetKey(path: string): Promise<Buffer> {
  const named = `fleet.keyFile ${path}`;
  let mode: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new FleetKeyError(`${named}: not a regular file`);
    mode = st.mode;
  } catch (err) {
    if (err instanceof FleetKeyError) throw err;
    throw new FleetKeyError(`${named}: ${(err as Error).message} (${MAKE_ONE(path)})`, err);
  }
  if ((mode & 0o077) !== 0) throw new FleetKeyError(`${named}: mode ${(mode & 0o777).toString(8)} lets others read it (anyone who can read it can forge shared verdicts); chmod 600 it`);
  let key: Buffer;
  try {
    key = await readFile(path);
  } catch (err) {
    throw new FleetKeyError(`${named}: cannot be read: ${(err as Error).message}`, err);
  }
  if (key.length < FLEET_KEY_MIN_BYTES) throw new FleetKeyError(`${named}: ${key.length} bytes, at least ${FLEET_KEY_MIN_BYTES} needed (${MAKE_ONE(path)})`);
  return key;
}
