#!/usr/bin/env node
// blessctl: the operator's tool. A small dispatcher: the first word picks a subcommand from commands/index.ts,
// which parses its own arguments. Exit codes: 0 ok, 1 runtime error (the message names the path), 2 usage error.
import { COMMANDS } from './commands/index.js';
import { UsageError } from './command.js';
import { quietOnClosedPipe } from './pipe.js';

function mainUsage(): string {
  return ['Usage: blessctl COMMAND [ARGS...]', '', 'Commands:', ...COMMANDS.map((c) => `  ${c.summary}`), '', 'blessctl COMMAND --help shows the options of one command.'].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? process.stderr : process.stdout).write(mainUsage() + '\n');
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`blessctl: unknown command ${JSON.stringify(name)}\n\n${mainUsage()}\n`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`blessctl ${command.name}: ${err.message}\n\n${command.usage}\n`);
      return 2;
    }
    process.stderr.write(`blessctl ${command.name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

quietOnClosedPipe();
process.exitCode = await main(process.argv.slice(2));
