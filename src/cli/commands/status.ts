// blessctl status: what the running daemon is doing — guards and their mode, counters, pending events, queues.
import { out, printable, table, type Command } from '../command.js';
import { duration, SOCKET_USAGE, socketArgs, withDaemon } from '../control.js';

const usage = `Usage: blessctl status [--json] [--socket PATH]

Asks the running daemon: its guards (and whether each blocks at read or at open), counters, waiting permission
events, live inode machines, the scan queues (pool, out-of-process scanners, subscribers) and the policy stack.

${SOCKET_USAGE}`;

/** The native settle walk's progress (native/fanotify/settle_walk.cc); older daemons do not report it. */
function settleWalkLine(w: any): string {
  if (!w) return 'settle walk: not reported';
  if (w.state === 'off') return 'settle walk: off';
  return `settle walk: ${w.state} (${w.completed} of ${w.runs} walks complete): ${w.walked} files walked, ${w.settledAllowed} allowed and ${w.settledDenied} denied by their tags, ${w.unsettled} left for their access, ${w.known + w.changed} known or changed, ${w.skipped} skipped`;
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'status                      what the running daemon is doing',
  usage,
  async run(args) {
    const parsed = socketArgs(args, usage, { count: 0, expected: 'status takes no arguments' });
    if (!parsed) return 0;
    const { values } = parsed;
    const s = (await withDaemon(values, (c) => c.request('status'))) as any;
    if (values.json) {
      const { v: _v, id: _id, ok: _ok, ...rest } = s;
      out(JSON.stringify(rest));
      return 0;
    }
    const c = s.counters;
    const fast = Object.values(c.fastPath as Record<string, number>).reduce((a, b) => a + b, 0);
    const lines = [
      `blessd pid ${s.daemon.pid} on ${s.daemon.host}, up ${duration(s.daemon.uptimeMs)}, config ${s.daemon.config}`,
      '',
      table(['GUARD', 'KIND', 'BLOCKS AT', 'NOTE'], s.guards.map((g: any) => [printable(g.path), g.kind, g.mode, g.fallback ?? ''])),
      '',
      `events ${c.events}: ${fast} answered on the native thread, ${c.forwarded} by JS (${c.answeredByDeadline} by deadline, ${c.answeredOverload} by overload)`,
      `verdicts: ${c.verdicts.allow} allowed, ${c.verdicts.deny} denied; scans: ${Object.entries(c.scans).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}; errors ${c.errors}; overflows ${c.overflows}`,
      `pending: ${s.pending.permissionEvents} permission events waiting (${s.pending.heldFds} fds held); ${s.machines.live} inode machines (${Object.entries(s.machines.states).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'})`,
      `pool: ${s.pool.threads} threads, ${s.queues.pool.running} scans running, ${s.queues.pool.queued} queued, utilization ${(s.pool.utilization * 100).toFixed(0)}%`,
      settleWalkLine(s.settleWalk),
      '',
      table(['STACK', 'CONTROL', 'ACTOR', 'FROM'], s.stack.map((e: any) => [e.name, e.control, e.actor, printable(e.origin)])),
    ];
    if (s.queues.scanners.length > 0) {
      lines.push('', table(['SCANNER', 'CONNECTED', 'CLIENT', 'IN FLIGHT', 'QUEUED', 'ANSWERED', 'TIMEOUTS'],
        s.queues.scanners.map((r: any) => [r.name, r.connected ? 'yes' : 'NO', r.client ?? '-', String(r.inFlight), String(r.queued), String(r.answered), String(r.timeouts)])));
    }
    if (s.queues.subscribers.length > 0) {
      lines.push('', table(['SUBSCRIBER', 'VERDICTS', 'QUEUED', 'LOST'], s.queues.subscribers.map((r: any) => [r.client, r.verdicts ? 'yes' : 'no', String(r.queued), String(r.lost)])));
    }
    out(lines.join('\n'));
    return 0;
  },
};
