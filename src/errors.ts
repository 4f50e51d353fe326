// The one error base of every layer. Each error carries a stable `code` that callers (and the control socket, and
// logs) branch on — never the message, which is for people and names the place: file:line:col, the path, the
// option. Subclasses group the codes by layer; the catalogue of every code is docs/errors.md.
export class BlessdError<Code extends string = string> extends Error {
  readonly code: Code;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : options);
    this.code = code;
    this.name = new.target.name;
  }
}

export function isBlessdError(err: unknown): err is BlessdError {
  return err instanceof BlessdError;
}
