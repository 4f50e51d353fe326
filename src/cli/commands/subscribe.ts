// blessctl subscribe: print the daemon's notices as they come (dirty files; verdicts with --verdicts).
import { parseArgs } from 'node:util';
import { out, parseOrUsage, printable, UsageError, type Command } from '../command.js';
import { connectDaemon, SOCKET_OPTIONS, SOCKET_USAGE, socketPath } from '../control.js';

const usage = `Usage: blessctl subscribe [--verdicts] [--count N] [--json] [--socket PATH]

Prints one line per notice: "dirty" when a file's content changed (its tags were cleared), and with --verdicts
"verdict" when a file was judged. --json prints the notices as the daemon sends them (fsid, dev, ino, handle,
path, cleared, time; docs/protocol.md). A subscriber that reads too slowly is told how many notices it lost.

  --verdicts              verdict notices too
  --count N               exit after N notices
${SOCKET_USAGE}`;

function line(n: Record<string, any>): string {
  const when = new Date(n.time).toISOString().slice(11, 23);
  if (n.event === 'lost') return `${when} LOST     ${n.count} notices (this subscriber read too slowly)`;
  if (n.event === 'dirty') return `${when} dirty    ${printable(String(n.path))}${n.cleared?.length ? `  cleared ${n.cleared.map((c: string) => c.replace(/^\w+\.scanned-by\./, '')).join(',')}` : ''}`;
  const why = [n.decidedBy, n.reason].filter(Boolean).map((s) => printable(String(s))).join(': ');
  return `${when} ${String(n.verdict).padEnd(8)} ${printable(String(n.path))}${why ? `  (${why})` : ''}`;
}

export const subscribeCommand: Command = {
  name: 'subscribe',
  summary: 'subscribe [--verdicts]      print notices: files that changed (and verdicts)',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() =>
      parseArgs({ args, options: { ...SOCKET_OPTIONS, verdicts: { type: 'boolean' }, count: { type: 'string' } }, allowPositionals: true, strict: true }),
    );
    if (values.help) {
      out(usage);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError('subscribe takes no arguments');
    const count = values.count === undefined ? Infinity : Number(values.count);
    if (!(count === Infinity || (Number.isInteger(count) && count > 0))) throw new UsageError('--count must be a positive integer');
    const c = await connectDaemon(socketPath(values));
    let seen = 0;
    let done = false;
    return new Promise<number>((resolve, reject) => {
      const stop = (code: number) => {
        done = true; // our own close below is no news to the user
        c.close();
        resolve(code);
      };
      process.once('SIGINT', () => stop(0));
      c.on('event', (n: Record<string, unknown>) => {
        if (n['event'] !== 'dirty' && n['event'] !== 'verdict' && n['event'] !== 'lost') return;
        out(values.json ? JSON.stringify(n) : line(n));
        if (n['event'] !== 'lost' && ++seen >= count) stop(0);
      });
      c.on('close', () => {
        if (done) return;
        process.stderr.write('blessctl subscribe: the daemon closed the connection\n');
        resolve(1);
      });
      c.request('subscribe', { verdicts: values.verdicts ?? false }).catch((err) => {
        c.close();
        reject(err);
      });
    });
  },
};
