// blessctl generation bump SCANNER: make every existing tag of SCANNER stale, without touching a file.
import { parseArgs } from 'node:util';
import { bumpGeneration } from '../../tags/generation.js';
import { isScannerName } from '../../tags/names.js';
import { COMMON_OPTIONS, COMMON_USAGE, commonOf, out, parseOrUsage, UsageError, type Command } from '../command.js';

const usage = `Usage: blessctl generation bump SCANNER [--state-dir DIR] [--json]

Increments SCANNER's bump counter in <state-dir>/generations.json. Tags carry "<actor generation>#<counter>":
every tag of SCANNER written before is stale-generation from now on, and the file is rescanned at its next use.

${COMMON_USAGE}`;

export const generationCommand: Command = {
  name: 'generation',
  summary: 'generation bump SCANNER     make every tag of SCANNER stale',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() => parseArgs({ args, options: COMMON_OPTIONS, allowPositionals: true, strict: true }));
    if (values.help) {
      out(usage);
      return 0;
    }
    const common = commonOf(values);
    if (positionals[0] !== 'bump' || positionals.length !== 2) throw new UsageError('expected: generation bump SCANNER');
    const scanner = positionals[1]!;
    if (!isScannerName(scanner)) throw new UsageError(`${JSON.stringify(scanner)} is not a scanner name ([a-z0-9][a-z0-9_-]*)`);
    const bump = await bumpGeneration(common.stateDir, scanner);
    if (common.json) out(JSON.stringify({ scanner, bump, stateDir: common.stateDir }));
    else out(`${scanner}: bump counter is now ${bump}; every older tag of ${scanner} is stale-generation`);
    return 0;
  },
};
