// Logs: JSON lines (pino) by default, for collectors; one readable line per record on a terminal; and under
// systemd, where stderr is the journal (JOURNAL_STREAM names its device:inode), one line per record with the
// syslog priority prefix journald reads ("<4>denied ..."), no timestamp (the journal has one), no colour ever.
import { fstatSync } from 'node:fs';
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config/types.js';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** pino level → syslog priority (sd-daemon(3)): debug 7, info 6, warning 4, err 3, crit 2. */
const PRIORITY: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };

function fields(rest: Record<string, unknown>): string {
  const keys = Object.keys(rest);
  return keys.length ? ' ' + keys.map((k) => `${k}=${typeof rest[k] === 'string' ? rest[k] : JSON.stringify(rest[k])}`).join(' ') : '';
}

function lineStream(out: NodeJS.WritableStream, format: (level: number, time: number, msg: string, rest: Record<string, unknown>) => string): DestinationStream {
  return {
    write(line: string) {
      try {
        const { level, time, msg, pid: _pid, hostname: _h, ...rest } = JSON.parse(line);
        // One record, one line: a newline inside a message would split it into two journal entries.
        out.write(format(level, time, String(msg ?? '').replace(/[\r\n]+/g, ' '), rest).replace(/[\r\n]+(?!$)/g, ' '));
      } catch {
        out.write(line);
      }
    },
  };
}

/** Whether `fd` is the journal's stream: JOURNAL_STREAM is "dev:ino" of the socket systemd connected it to. */
export function isJournalStream(fd: number, env: NodeJS.ProcessEnv = process.env): boolean {
  const js = env['JOURNAL_STREAM'];
  if (!js) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return js === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

export function makeLogger(level: LogLevel, dest: NodeJS.WriteStream = process.stderr): Logger {
  const fd = (dest as { fd?: number }).fd ?? 2;
  let stream: DestinationStream;
  if (isJournalStream(fd)) {
    stream = lineStream(dest, (lvl, _time, msg, rest) => `<${PRIORITY[lvl] ?? 6}>${msg}${fields(rest)}\n`);
  } else if (dest.isTTY) {
    stream = lineStream(dest, (lvl, time, msg, rest) => `${new Date(time).toISOString().slice(11, 23)} ${(LEVELS[lvl] ?? String(lvl)).padEnd(5)} ${msg}${fields(rest)}\n`);
  } else {
    stream = pino.destination({ fd, sync: true });
  }
  return pino({ level, base: { pid: process.pid } }, stream);
}

export type { Logger };
