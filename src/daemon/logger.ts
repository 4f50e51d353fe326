// JSON logs with pino; on a terminal, one readable line per record instead (no extra dependency for that).
import { pino, type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config/types.js';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function readable(out: NodeJS.WriteStream): DestinationStream {
  return {
    write(line: string) {
      try {
        const { level, time, msg, pid: _pid, hostname: _h, ...rest } = JSON.parse(line);
        const extra = Object.keys(rest).length ? ' ' + Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') : '';
        out.write(`${new Date(time).toISOString().slice(11, 23)} ${(LEVELS[level] ?? level).padEnd(5)} ${msg}${extra}\n`);
      } catch {
        out.write(line);
      }
    },
  };
}

export function makeLogger(level: LogLevel, dest: NodeJS.WriteStream = process.stderr): Logger {
  const stream = dest.isTTY ? readable(dest) : pino.destination({ fd: (dest as any).fd ?? 2, sync: true });
  return pino({ level, base: { pid: process.pid } }, stream);
}

export type { Logger };
