// Errors of configuration loading. One error for the whole file: a user fixing config.yaml wants every problem
// at once, each with its place (file:line:col) and key path.
import { BlessdError } from '../errors.js';

export class ConfigError extends BlessdError<'BLESSD_CONFIG'> {
  /** One line per problem: "<file>:<line>:<col>: <key path>: <what is wrong>". */
  readonly issues: readonly string[];
  readonly file: string;

  constructor(file: string, issues: readonly string[]) {
    const head = issues.length === 1 ? `invalid configuration ${file}` : `invalid configuration ${file} (${issues.length} problems)`;
    super('BLESSD_CONFIG', `${head}:\n  ${issues.join('\n  ')}`);
    this.file = file;
    this.issues = Object.freeze([...issues]);
  }
}
