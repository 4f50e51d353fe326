// blessd under test: a config written into the bench's temp dir, the daemon started in its own process (see
// daemon-host.ts), and what the bench asks of it: stats, scan times, CPU, memory, marks; stopped with a time limit.
import { fork, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DaemonStats } from '../../src/daemon/stats.js';
import type { HostReply, HostRequest, ScanTime } from './daemon-host.js';
import { cpuSeconds, fanotifyMarks, memory, type MarkCount } from './proc.js';

export type { ScanTime } from './daemon-host.js';

export interface BlessdOptions {
  /** The guarded mount point (guarded as a whole filesystem). */
  guard: string;
  /** A private directory for state, key, socket, config and log. */
  base: string;
  /** Signature database directory. */
  databases: string;
  wait?: 'read' | 'open';
  threads?: number;
  /** pool.scanTimeout in ms (default here 60 s, so that a 64 MiB scan on a busy machine never times out). */
  scanTimeoutMs?: number;
  /** pool.rescanDebounce in ms (blessd's default: 200). */
  rescanDebounceMs?: number;
  /** pool.rescan (blessd's default when unset). */
  rescan?: 'onClose' | 'onRead';
  logLevel?: string;
  /** Record every scan's timing (scanTimes()); costs memory in the daemon, so only the cold bench turns it on. */
  recordScans?: boolean;
  /** gate.settleWalk (blessd's default when unset). */
  settleWalk?: { enabled: boolean; filesPerSecond?: number };
  /** Write a V8 CPU profile of the daemon process (and its workers) into this directory (BENCH_PROFILE). */
  profileDir?: string;
}

export function configYaml(o: BlessdOptions): string {
  const state = join(o.base, 'blessd-state');
  return `# written by bench/lib/blessd.ts
stateDir: ${state}
tags:
  keyFile: ${join(state, 'tag.key')}
guards:
  - path: ${o.guard}
    kind: filesystem
    wait: ${o.wait ?? 'read'}
gate:
  deadline: 60s
${o.settleWalk ? `  settleWalk: { enabled: ${o.settleWalk.enabled}${o.settleWalk.filesPerSecond ? `, filesPerSecond: ${o.settleWalk.filesPerSecond}` : ''} }\n` : ''}pool:
  threads: ${o.threads ?? 2}
  scanTimeout: ${o.scanTimeoutMs ?? 60_000}ms
  rescanDebounce: ${o.rescanDebounceMs ?? 200}ms
${o.rescan ? `  rescan: ${o.rescan}\n` : ''}stack:
  - actor: signature
    options: { databases: [${o.databases}] }
  - actor: default
    options: { answer: allow }
socket:
  path: ${join(o.base, 'blessd.sock')}
log:
  level: ${o.logLevel ?? 'warn'}
`;
}

const HOST = new URL('./daemon-host.js', import.meta.url).pathname;

export class Blessd {
  private next = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exited = false;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (r: HostReply) => {
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if (r.ok) w.resolve(r.value);
      else w.reject(new Error(`blessd: ${r.error}`));
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      for (const w of this.waiting.values()) w.reject(new Error(`blessd exited (${signal ?? code})`));
      this.waiting.clear();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  static async start(o: BlessdOptions, timeoutMs = 60_000): Promise<Blessd> {
    await mkdir(o.base, { recursive: true });
    const configFile = join(o.base, 'blessd.yaml');
    await writeFile(configFile, configYaml(o));
    const log = createWriteStream(join(o.base, 'blessd.log'), { flags: 'a' });
    const profileDir = o.profileDir ?? process.env.BENCH_PROFILE;
    const execArgv = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
    const env = { ...process.env, BENCH_RECORD_SCANS: o.recordScans ? '1' : '0' };
    const child = fork(HOST, [configFile], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv, env });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const b = new Blessd(child);
    const ready = new Promise<void>((resolve, reject) => {
      b.waiting.set(0, { resolve: () => resolve(), reject });
      child.once('exit', (code) => reject(new Error(`blessd did not start (exit ${code}); see ${join(o.base, 'blessd.log')}`)));
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      await ready;
    } finally {
      clearTimeout(timer);
    }
    return b;
  }

  private ask<T>(op: HostRequest['op'], timeoutMs = 60_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error('blessd is not running'));
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`blessd: no answer to ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, op } satisfies HostRequest);
    });
  }

  stats(): Promise<DaemonStats> {
    return this.ask('stats');
  }

  /** Scan times recorded since the last call (and forgotten by the daemon). */
  scanTimes(): Promise<ScanTime[]> {
    return this.ask('scanTimes');
  }

  /** The main thread's view: V8 heap used and total, external and ArrayBuffer memory (workers not included). */
  memoryUsage(): Promise<NodeJS.MemoryUsage> {
    return this.ask('memoryUsage');
  }

  /** A full garbage collection in the daemon. */
  gc(): Promise<boolean> {
    return this.ask('gc');
  }

  cpuSeconds(): Promise<number> {
    return cpuSeconds(this.pid);
  }

  memory(): Promise<{ rss: number; hwm: number }> {
    return memory(this.pid);
  }

  marks(): Promise<MarkCount> {
    return fanotifyMarks(this.pid);
  }

  /** Stop cleanly (everything pending answered, marks removed); SIGKILL if that takes longer than the limit. */
  async stop(timeoutMs = 30_000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      await this.ask('stop', timeoutMs).catch(() => this.child.kill('SIGKILL'));
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Sum of the gate's per-kind event counters. */
export const totalEvents = (s: DaemonStats) => Object.values(s.gate.events).reduce((a, b) => a + b, 0);
