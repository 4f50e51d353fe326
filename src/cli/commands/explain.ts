// blessctl explain PATH: why the running daemon gives a file its verdict — stamp, each entry's answer and where it
// comes from, each tag's judgement, and the entry and control that decided.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Explanation } from '../../daemon/explain.js';
import { out, parseOrUsage, printable, table, UsageError, type Command } from '../command.js';
import { SOCKET_OPTIONS, SOCKET_USAGE, withDaemon } from '../control.js';

const usage = `Usage: blessctl explain PATH [--scan] [--json] [--socket PATH]

For one file, as the running daemon judges it: the file's stamp; for each stack entry its control, its answer and
where that comes from (a valid tag, the constant default, a fresh scan, or none yet), and the judgement of its tag
(valid, stale-stamp, stale-generation, bad-mac...); then the verdict and the entry and control that decided it.
--scan runs the entries that have no answer yet, in the daemon's pool, without writing tags. Root only.

  --scan                  scan what no valid tag answers (read-only: no tag is written)
${SOCKET_USAGE}`;

export function explainText(x: Explanation): string {
  const lines = [`${printable(x.path)}: ino ${x.stamp.ino}, igen ${x.stamp.igen}, size ${x.stamp.size}`];
  const rows = x.entries.map((e, i) => [
    String(i + 1),
    e.name,
    e.control,
    e.answer ?? '-',
    e.source,
    e.tag ? e.tag.judgement : '-',
    printable([e.reason, e.tag && e.tag.judgement !== 'valid' ? e.tag.detail : null, e.error].filter(Boolean).join('; ')),
  ]);
  lines.push(table(['#', 'ENTRY', 'CONTROL', 'ANSWER', 'FROM', 'TAG', 'REASON / DETAIL'], rows));
  if (x.verdict === 'pending') lines.push(`verdict: pending — waiting for ${x.waitingFor.join(', ')} (a read would wait for their scans)`);
  else lines.push(`verdict: ${x.verdict}${x.decidedBy ? ` — decided by ${x.decidedBy} (${x.decidedByControl})` : ''}${x.reason ? `: ${printable(x.reason)}` : ''}`);
  for (const i of x.ignored) lines.push(`ignored: ${i.name} (${i.control}) said deny${i.reason ? `: ${printable(i.reason)}` : ''}`);
  return lines.join('\n');
}

export const explainCommand: Command = {
  name: 'explain',
  summary: 'explain PATH [--scan]       why a file gets its verdict, entry by entry',
  usage,
  async run(args) {
    const { values, positionals } = parseOrUsage(() => parseArgs({ args, options: { ...SOCKET_OPTIONS, scan: { type: 'boolean' } }, allowPositionals: true, strict: true }));
    if (values.help) {
      out(usage);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('expected: explain PATH');
    const path = resolve(positionals[0]!);
    const r = (await withDaemon(values, (c) => c.request('explain', { path, scan: values.scan ?? false }))) as { explain: Explanation };
    out(values.json ? JSON.stringify(r.explain) : explainText(r.explain));
    return r.explain.verdict === 'deny' ? 3 : 0;
  },
};
