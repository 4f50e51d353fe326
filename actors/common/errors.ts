// Errors thrown by the built-in actors. Each carries a stable `code` so the daemon can branch on it without parsing
// messages; the message always names the actor and the thing at fault (option, file:line, program).
import { BlessdError } from '../../src/errors.js';

export type ActorErrorCode =
  | 'ACTOR_OPTIONS' // an option is missing or of the wrong shape
  | 'ACTOR_DATABASE' // a database or rule file cannot be read
  | 'ACTOR_EXEC_SPAWN' // the exec actor could not start its program
  | 'ACTOR_EXEC_EXIT' // the program exited with a code outside the contract
  | 'ACTOR_EXEC_SIGNAL' // the program was killed by a signal
  | 'ACTOR_EXEC_TIMEOUT' // the program did not finish in time and was killed
  | 'ACTOR_READ'; // reading the scanned file failed

export class ActorError extends BlessdError<ActorErrorCode> {
  constructor(code: ActorErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
