// Errors of the scan pool itself (not of a scan: those are ScanOutcome values). Stable codes, messages that name
// the entry or option at fault.
import { BlessdError } from '../errors.js';
export type PoolErrorCode =
  | 'POOL_OPTIONS' // a bad constructor option
  | 'POOL_CLOSED' // the pool was closed before or during the call
  | 'POOL_LOAD' // an actor could not be loaded (describe/generation)
  | 'POOL_TIMEOUT' // loading an actor took longer than loadTimeoutMs
  | 'POOL_ACTOR_API'; // a module that does not follow actor API v1 (manifest.api, init, what init returned)

export class PoolError extends BlessdError<PoolErrorCode> {
  constructor(code: PoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
