// The scan farm's listener (scanner-listener.ts) cannot start: farm.listen, farm.cert, farm.key or farm.secretFile
// is missing or not usable. The message names the key and the file or address.
import { BlessdError } from '../errors.js';

export class FarmError extends BlessdError<'BLESSD_FARM'> {
  constructor(message: string, cause?: unknown) {
    super('BLESSD_FARM', message, cause === undefined ? undefined : { cause });
  }
}
