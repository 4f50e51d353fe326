// blessctl reload: the running daemon re-reads its config file (like SIGHUP, but with an answer).
import { out, type Command } from '../command.js';
import { SOCKET_USAGE, socketArgs, withDaemon } from '../control.js';

const usage = `Usage: blessctl reload [--json] [--socket PATH]

The daemon re-reads its config file and replaces the policy stack; a bad file is refused with its file:line
errors, and the old configuration stays. The stack, must-pass, exempt, pool limits and log level apply at once;
changed keys of stateDir, tags, guards, gate, socket, metrics, farm, crawl, fleet and pool.threads are named and
take effect at the next restart. Root only.

${SOCKET_USAGE}`;

export const reloadCommand: Command = {
  name: 'reload',
  summary: 'reload                      re-read the config file (errors shown, old config kept)',
  usage,
  async run(args) {
    const parsed = socketArgs(args, usage, { count: 0, expected: 'reload takes no arguments' });
    if (!parsed) return 0;
    const { values } = parsed;
    const r = (await withDaemon(values, (c) => c.request('reload'))) as { stack: string[]; restartNeeded?: string[] };
    const restartNeeded = r.restartNeeded ?? [];
    if (values.json) out(JSON.stringify({ reloaded: true, stack: r.stack, restartNeeded }));
    else {
      out(`reloaded; stack: ${r.stack.join(' ')}`);
      if (restartNeeded.length > 0) out(`not applied until the daemon restarts: ${restartNeeded.join(', ')}`);
    }
    return 0;
  },
};
