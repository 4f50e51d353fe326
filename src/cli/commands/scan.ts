// blessctl scan PATH: judge a file or a whole tree now, through the running daemon, with a progress bar.
import { resolve } from 'node:path';
import { out, printable, type Command } from '../command.js';
import { duration, SOCKET_USAGE, socketArgs, withDaemon } from '../control.js';

const usage = `Usage: blessctl scan PATH [--json] [--socket PATH]

The daemon judges PATH (a file, or every regular file below a directory; symlinks are not followed) the way an
access would: valid tags are used, missing scanners run, tags are written. A progress bar shows on a terminal.
Exit 0 if nothing was denied, 3 if something was, 1 on errors. Root only.

${SOCKET_USAGE}`;

interface Progress {
  done: number;
  total: number;
  allowed: number;
  denied: number;
  errors: number;
}

function bar(p: Progress, width = 30): string {
  const frac = p.total === 0 ? 1 : p.done / p.total;
  const full = Math.round(frac * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${p.done}/${p.total} ${(frac * 100).toFixed(0)}%  allowed ${p.allowed}  denied ${p.denied}${p.errors ? `  errors ${p.errors}` : ''}`;
}

export const scanCommand: Command = {
  name: 'scan',
  summary: 'scan PATH                   judge a file or a tree now (progress bar)',
  usage,
  async run(args) {
    const parsed = socketArgs(args, usage, { count: 1, expected: 'expected: scan PATH' });
    if (!parsed) return 0;
    const { values, positionals } = parsed;
    const path = resolve(positionals[0]!);
    const tty = process.stderr.isTTY === true && !values.json;
    const r = (await withDaemon(values, (c) =>
      c.request('scan', { path, progress: tty }, { onProgress: (p) => process.stderr.write(`\r${bar(p as unknown as Progress)}`) }),
    )) as { scan: Progress & { pending: number; ms: number; denials: { path: string; reason?: string; decidedBy?: string }[]; truncated: boolean } };
    if (tty) process.stderr.write('\n');
    const s = r.scan;
    if (values.json) out(JSON.stringify(s));
    else {
      const lines = [`${printable(path)}: ${s.total} files in ${duration(s.ms)}: ${s.allowed} allowed, ${s.denied} denied, ${s.pending} pending, ${s.errors} errors${s.truncated ? ' (stopped at the file limit)' : ''}`];
      for (const d of s.denials) lines.push(`denied ${printable(d.path)}: ${printable([d.decidedBy, d.reason].filter(Boolean).join(': '))}`);
      if (s.denied > s.denials.length) lines.push(`... and ${s.denied - s.denials.length} more`);
      out(lines.join('\n'));
    }
    return s.errors > 0 ? 1 : s.denied > 0 ? 3 : 0;
  },
};
