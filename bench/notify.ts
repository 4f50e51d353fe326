// Question: how long from a write() to the dirty notice in a subscriber's hands, under a write storm, with 1 and
// with 10 subscribers?
//
// One run, one ext4 image, a real daemon (in this process, as in the tests) with its control socket. A child
// process writes to N files (paced at a rate, or as fast as it can), printing CLOCK_MONOTONIC before each write();
// subscribers are child processes (examples/subscriber.py) stamping each notice on arrival with the same clock.
// The baseline of each round is the same notice seen inside the daemon (its 'notice' event, also CLOCK_MONOTONIC):
// the ratio says what the socket and the subscriber add to what the daemon itself takes.
//
//   node dist/bench/notify.js            (root; BENCH_FILES=2000 BENCH_RATE=1000 to change the storm)
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { loadavg } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '../src/config/index.js';
import { Daemon } from '../src/daemon/daemon.js';
import { makeLogger } from '../src/daemon/logger.js';
import { NotifyServer } from '../src/notify/server.js';
import { makeScratch } from '../test/helpers/scratch.js';
import { printTable, writeResult } from './lib/report.js';

const FILES = Number(process.env.BENCH_FILES ?? 2000);
const RATE = Number(process.env.BENCH_RATE ?? 1000); // writes per second in the paced rounds
const PYTHON = '/usr/bin/python3';
const REPO = process.cwd();

const WRITER = `import os, sys, time
rate = float(sys.argv[1]); paths = sys.argv[2:]
start = time.monotonic()
out = []
for i, p in enumerate(paths):
    if rate > 0:
        delay = start + i / rate - time.monotonic()
        if delay > 0: time.sleep(delay)
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    t = time.monotonic_ns()
    os.write(fd, b"x\\n")
    os.close(fd)
    out.append(f"{t} {p}")
print("\\n".join(out), flush=True)
`;

interface Child {
  lines: string[];
  done: Promise<void>;
  kill(): void;
  waitFor(pred: () => boolean, ms: number): Promise<boolean>;
}

/**
 * A child whose stdout goes to a file, read back by polling. Not a pipe: this process is the daemon, and a pipe
 * it is too busy to drain would stall the subscriber on print() and show up as notice latency (or loss).
 */
function child(cmd: string, args: string[], outFile: string): Child {
  const fd = openSync(outFile, 'w');
  const p = spawn(cmd, args, { stdio: ['ignore', fd, 'inherit'] });
  closeSync(fd);
  const lines: string[] = [];
  let partial = '';
  let offset = 0;
  const watchers = new Set<() => void>();
  // Only the new bytes, with a positioned read: re-reading the whole file would load the daemon under test.
  const rfd = openSync(outFile, 'r');
  const chunk = Buffer.alloc(1 << 20);
  const drain = () => {
    let n;
    while ((n = readSync(rfd, chunk, 0, chunk.length, offset)) > 0) {
      offset += n;
      partial += chunk.subarray(0, n).toString('utf8');
    }
    const parts = partial.split('\n');
    partial = parts.pop()!;
    if (parts.length > 0) lines.push(...parts);
  };
  const poll = setInterval(() => {
    drain();
    for (const w of [...watchers]) w();
  }, 50);
  const done = new Promise<void>((r) =>
    p.on('close', () => {
      setTimeout(() => {
        clearInterval(poll);
        drain();
        if (partial) lines.push(partial);
        partial = '';
        closeSync(rfd);
        r();
      }, 60);
    }),
  );
  return {
    lines,
    done,
    kill: () => p.kill('SIGKILL'),
    waitFor: (pred, ms) =>
      new Promise((resolve) => {
        const check = () => {
          if (pred()) finish(true);
        };
        const timer = setTimeout(() => finish(false), ms);
        const finish = (v: boolean) => {
          clearTimeout(timer);
          watchers.delete(check);
          resolve(v);
        };
        watchers.add(check);
        check();
      }),
  };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (process.getuid?.() !== 0) throw new Error('bench/notify needs root (fanotify, loop mounts)');
  const scratch = await makeScratch('ext4', 256);
  const daemons: { daemon?: Daemon; server?: NotifyServer } = {};
  try {
    const state = join(scratch.base, 'state');
    await mkdir(state);
    const dir = join(scratch.dir, 'files');
    await mkdir(dir);
    const config = parseConfig(
      `stateDir: ${state}
guards: [{ path: ${scratch.dir}, kind: filesystem, wait: read }]
pool: { threads: 2, rescanDebounce: 200ms }
socket: { path: ${join(scratch.base, 'blessd.sock')} }
log: { level: error }
stack:
  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: default
    options: { answer: allow }
`,
      join(scratch.base, 'config.yaml'),
    );
    const log = makeLogger('error');
    const daemon = (daemons.daemon = await Daemon.start(config, log));
    // In the daemon: when each dirty notice was emitted (the baseline). Listening before the server does, so the
    // stamp is taken before the fan-out to the subscribers' sockets.
    const emitted = new Map<string, bigint>();
    daemon.on('notice', (n: { event: string; path?: string }) => {
      if (n.event === 'dirty' && n.path && !emitted.has(n.path)) emitted.set(n.path, process.hrtime.bigint());
    });
    const server = (daemons.server = await NotifyServer.start({ control: daemon.control(), notices: daemon, socket: config.socket, log }));

    const rows: Record<string, string | number>[] = [];
    const raw: unknown[] = [];
    let round = 0;
    for (const subscribers of [1, 10]) {
      for (const rate of [100, RATE, 0]) {
        round++;
        // A paced round lasts at most a few seconds.
        const files = rate > 0 ? Math.min(FILES, rate * 3) : FILES;
        const paths = Array.from({ length: files }, (_, i) => join(dir, `r${round}-${i}`));
        for (const p of paths) await writeFile(p, 'seed\n'); // our own writes: they settle before the storm
        await waitQuiet(daemon);
        emitted.clear();

        const subs = Array.from({ length: subscribers }, (_, k) => child(PYTHON, [join(REPO, 'examples/subscriber.py'), config.socket.path], join(scratch.base, `sub-${round}-${k}.out`)));
        for (const s of subs) await s.waitFor(() => s.lines.some((l) => l.includes('"ok":true')), 10_000);
        const writer = child(PYTHON, ['-c', WRITER, String(rate), ...paths], join(scratch.base, `writer-${round}.out`));
        await writer.done;
        const written = new Map(writer.lines.filter(Boolean).map((l) => [l.split(' ')[1]!, BigInt(l.split(' ')[0]!)]));
        const firstWrite = [...written.values()].reduce((a, b) => (a < b ? a : b));
        const lastWrite = [...written.values()].reduce((a, b) => (a > b ? a : b));
        const wanted = new Set(paths);
        for (const s of subs) await s.waitFor(() => dirtyOf(s.lines, wanted).size + lostOf(s.lines) >= files, 120_000);

        const inDaemon = paths.filter((p) => emitted.has(p)).map((p) => Number(emitted.get(p)! - written.get(p)!) / 1e6);
        const atSubs: number[] = [];
        let lost = 0;
        for (const s of subs) {
          for (const [p, ns] of dirtyOf(s.lines, wanted)) atSubs.push(Number(ns - written.get(p)!) / 1e6);
          lost += lostOf(s.lines);
          s.kill();
        }
        const storm = Number(lastWrite - firstWrite) / 1e9;
        const row = {
          subscribers,
          storm: rate > 0 ? `${rate}/s paced` : 'unpaced',
          files,
          'writes/s': Math.round(files / Math.max(storm, 1e-3)),
          'daemon p50 ms': inDaemon.length ? pct(inDaemon, 50).toFixed(2) : '-',
          'daemon p99 ms': inDaemon.length ? pct(inDaemon, 99).toFixed(2) : '-',
          'subscriber p50 ms': pct(atSubs, 50).toFixed(2),
          'subscriber p99 ms': pct(atSubs, 99).toFixed(2),
          'p50 ratio': (pct(atSubs, 50) / pct(inDaemon, 50)).toFixed(2) + 'x',
          notices: atSubs.length,
          lost,
        };
        rows.push(row);
        raw.push(row);
        await sleep(300);
      }
    }
    printTable(`write → dirty notice latency (load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')})`, rows);
    console.log(`\nresults: ${writeResult('notify', { files: FILES, rate: RATE, rows: raw })}`);
  } finally {
    await daemons.server?.close();
    await daemons.daemon?.stop();
    await scratch.cleanup();
  }
}

function dirtyOf(lines: string[], wanted: Set<string>): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const l of lines) {
    const sp = l.indexOf(' ');
    if (sp < 0 || !l.includes('"event":"dirty"')) continue;
    const n = JSON.parse(l.slice(sp + 1));
    if (wanted.has(n.path) && !out.has(n.path)) out.set(n.path, BigInt(l.slice(0, sp)));
  }
  return out;
}

function lostOf(lines: string[]): number {
  let n = 0;
  for (const l of lines) if (l.includes('"event":"lost"')) n += JSON.parse(l.slice(l.indexOf(' ') + 1)).count;
  return n;
}

/** Until no inode machine is live (the previous round's rescans are done), at most 60 s. */
async function waitQuiet(d: Daemon) {
  for (let i = 0; i < 600 && (d.stats().machines > 0 || d.control().pool().queued + d.control().pool().running > 0); i++) await sleep(100);
  await sleep(300);
}

await main();
