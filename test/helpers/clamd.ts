// A real clamd for tests: Debian's clamav-daemon binary with a private clamd.conf in the test's own temp dir
// (foreground, a unix socket there, a TCP socket on 127.0.0.1 with a free port, a database directory the test
// writes). No freshclam, no system clamd. Stopped at teardown, also on failure.
//
// The database is a `daily.cud` (an unsigned ClamAV container: 512-byte header, then tar.gz with daily.info and
// daily.hdb), because only a daily.* container gives clamd a database version: the VERSION answer the clamd
// actor uses as its generation moves only with it.
import type { ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile, mkdir, readFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const CLAMD_BIN = '/usr/sbin/clamd';
export const haveClamd = () => existsSync(CLAMD_BIN);

export interface Signature {
  /** The exact content that matches (an .hdb line: md5:size:name). */
  content: Buffer | string;
  name: string;
}

/** One ustar entry (header + content padded to 512). Written by hand: a dozen lines spare a dependency. */
function tarEntry(name: string, data: Buffer, mtime: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'ascii');
  h.write('0000644\0', 100, 'ascii');
  h.write('0000000\0', 108, 'ascii');
  h.write('0000000\0', 116, 'ascii');
  h.write(data.length.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  h.write(mtime.toString(8).padStart(11, '0') + '\0', 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum field counts as spaces
  h.write('0', 156, 'ascii');
  h.write('ustar\0' + '00', 257, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad]);
}

/** A daily.cud of database version `version` holding hash signatures for `sigs`. */
export function dailyCud(version: number, sigs: Signature[]): Buffer {
  const stime = Math.floor(Date.now() / 1000);
  const hdb = Buffer.from(
    sigs.map((s) => {
      const content = Buffer.from(s.content);
      return `${createHash('md5').update(content).digest('hex')}:${content.length}:${s.name}\n`;
    }).join(''),
  );
  const fields = (md5: string) => `ClamAV-VDB:01 Dec 2026 00-00 +0000:${version}:${sigs.length}:90:${md5}:X:blessd-test:${stime}`;
  const info = Buffer.from(`${fields('X')}\ndaily.hdb:${hdb.length}:${createHash('sha256').update(hdb).digest('hex')}\n`);
  const tar = Buffer.concat([tarEntry('daily.info', info, stime), tarEntry('daily.hdb', hdb, stime), Buffer.alloc(1024)]);
  const body = gzipSync(tar);
  const header = Buffer.alloc(512, ' ');
  header.write(fields(createHash('md5').update(body).digest('hex')), 0, 'ascii');
  return Buffer.concat([header, body]);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** One clamd command on a fresh connection (`zVERSION`, `zRELOAD`), with a bound that fails. */
export function clamdCommand(socket: string, command: string, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ path: socket });
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`clamd: no answer to ${command} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('data', (d) => {
      out += d.toString();
      if (out.includes('\0')) {
        clearTimeout(timer);
        s.destroy();
        resolve(out.slice(0, out.indexOf('\0')));
      }
    });
    s.write(`z${command}\0`);
  });
}

export interface Clamd {
  dir: string;
  socket: string;
  port: number;
  db: string;
  log: string;
  pid(): number;
  /** Write a new database version (take it in with `reload()`). */
  writeDatabase(version: number, sigs: Signature[]): Promise<void>;
  /** clamd's RELOAD (answered at once; the reload runs in the background). */
  reload(): Promise<void>;
  /** Start (again, after kill) with the current database; resolves once clamd answers VERSION. */
  start(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Send a signal without waiting for an exit (SIGSTOP, SIGCONT). */
  signal(signal: NodeJS.Signals): void;
  logText(): Promise<string>;
}

export interface ClamdPlace {
  /** TCPAddr (default 127.0.0.1): a network namespace's address for a farm host. */
  tcpAddr?: string;
  /** An argv prefix clamd runs behind (`ip netns exec NS`, which execs: the child's pid stays clamd's). */
  prefix?: string[];
}

/** A private clamd, started with database version 1 = `sigs`. `conf` adds clamd.conf lines. */
export async function startClamd(t: ExecutionContext, sigs: Signature[], conf: string[] = [], place: ClamdPlace = {}): Promise<Clamd> {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-clamd-'));
  const db = join(dir, 'db');
  await mkdir(db);
  const socket = join(dir, 'clamd.sock');
  const log = join(dir, 'clamd.log');
  const port = await freePort();
  const confFile = join(dir, 'clamd.conf');
  await writeFile(
    confFile,
    [
      'Foreground yes',
      `LocalSocket ${socket}`,
      `TCPSocket ${port}`,
      `TCPAddr ${place.tcpAddr ?? '127.0.0.1'}`,
      `DatabaseDirectory ${db}`,
      `LogFile ${log}`,
      'LogClean yes',
      'LogTime yes',
      `PidFile ${join(dir, 'clamd.pid')}`,
      'SelfCheck 3600', // only RELOAD reloads: the test decides when
      ...conf,
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const c: Clamd = {
    dir,
    socket,
    port,
    db,
    log,
    pid: () => child?.pid ?? -1,
    async writeDatabase(version, list) {
      await writeFile(join(db, 'daily.cud'), dailyCud(version, list));
    },
    async reload() {
      // clamd answers at once and reloads in the background; its VERSION moves once the new database is in.
      const r = await clamdCommand(socket, 'RELOAD');
      if (r.trim() !== 'RELOADING') throw new Error(`clamd RELOAD answered ${r}`);
    },
    async start() {
      const argv = [...(place.prefix ?? []), CLAMD_BIN, '-c', confFile];
      const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
      child = p;
      let out = '';
      const ready = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`clamd did not start within 30 s: ${out.slice(-500)}`)), 30_000);
        const onData = (d: Buffer) => {
          out += d.toString();
          // Printed after the databases loaded, right before clamd accepts connections.
          if (out.includes('Self checking every')) {
            clearTimeout(timer);
            resolve();
          }
        };
        p.stdout!.on('data', onData);
        p.stderr!.on('data', onData);
        p.once('exit', (code, sig) => {
          clearTimeout(timer);
          reject(new Error(`clamd exited (${code ?? sig}) while starting: ${out.slice(-500)}`));
        });
      });
      await ready;
      await clamdCommand(socket, 'VERSION');
    },
    async kill(signal = 'SIGKILL') {
      const p = child;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill(signal);
      await gone;
    },
    signal(sig) {
      child?.kill(sig);
    },
    logText: () => readFile(log, 'utf8').catch(() => ''),
  };
  t.teardown(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      await c.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await c.writeDatabase(1, sigs);
  await c.start();
  return c;
}
