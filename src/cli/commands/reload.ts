// blessctl reload: the running daemon re-reads its config file (like SIGHUP, but with an answer).
import { out, type Command } from '../command.js';
import { SOCKET_USAGE, socketArgs, withDaemon } from '../control.js';

const usage = `Usage: blessctl reload [--json] [--socket PATH]

The daemon re-reads its config file and replaces the policy stack; a bad file is refused with its file:line
errors, and the old configuration stays. Guards and gate settings take effect at the next restart. Root only.

${SOCKET_USAGE}`;

export const reloadCommand: Command = {
  name: 'reload',
  summary: 'reload                      re-read the config file (errors shown, old config kept)',
  usage,
  async run(args) {
    const parsed = socketArgs(args, usage, { count: 0, expected: 'reload takes no arguments' });
    if (!parsed) return 0;
    const { values } = parsed;
    const r = (await withDaemon(values, (c) => c.request('reload'))) as { stack: string[] };
    out(values.json ? JSON.stringify({ reloaded: true, stack: r.stack }) : `reloaded; stack: ${r.stack.join(' ')}`);
    return 0;
  },
};
