// The daemon under test, in its own process: `Daemon.start(config)` exactly as `blessd run` does, plus an IPC
// channel to the bench for what the CLI does not print (the daemon's stats, and how long each scan took). Its CPU,
// memory and marks are read from /proc by the bench, so nothing the bench does is counted against it.
//
// Scan timing (only when started with BENCH_RECORD_SCANS=1 in its environment, since the records take memory):
// ScanPool.prototype.scan is wrapped to record, per call, the worker's own scan time (`ms`, what the actor spent) and
// the wall time of the call (queueing and the hop to the worker included); ScanPool.prototype.judge likewise, per
// scan of each file of a batch. Nothing else changes.
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { loadConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { makeLogger } from '../../src/daemon/logger.js';
import { ScanPool } from '../../src/pool/scan-pool.js';

export interface ScanTime {
  path: string;
  scanner: string;
  size: number;
  /** The actor's own time in the worker (NaN if the scan failed). */
  ms: number;
  /** The whole pool call: queue wait + dispatch + scan + result. */
  wallMs: number;
}

export type HostRequest = { id: number; op: 'stats' | 'scanTimes' | 'gc' | 'memoryUsage' | 'stop' };
export type HostReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

const times: ScanTime[] = [];
if (process.env.BENCH_RECORD_SCANS === '1') {
  const original = ScanPool.prototype.scan;
  ScanPool.prototype.scan = async function (this: ScanPool, file, entry, opts) {
    const t0 = performance.now();
    const r = await original.call(this, file, entry, opts);
    times.push({ path: file.path, scanner: entry.name, size: file.size, ms: r.kind === 'answer' ? r.ms : NaN, wallMs: performance.now() - t0 });
    return r;
  };
  // The cold path judges files in batches (one task, every scan of every file in it): each scan is recorded with
  // the batch's wall time, as the pool call its file waited for.
  const judge = ScanPool.prototype.judge;
  ScanPool.prototype.judge = async function (this: ScanPool, fds, policy, lane) {
    const t0 = performance.now();
    const r = await judge.call(this, fds, policy, lane);
    const wallMs = performance.now() - t0;
    if (!('failed' in r)) for (const f of r.files) for (const s of f.scans) times.push({ path: f.path, scanner: s.name, size: NaN, ms: s.ms, wallMs });
    return r;
  };
}

async function main() {
  const file = process.argv[2];
  if (!file || !process.send) throw new Error('daemon-host: run me with fork(daemon-host.js, [config])');
  const config = loadConfig(file);
  const daemon = await Daemon.start(config, makeLogger(config.log.level));
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= daemon.stop());
  process.on('SIGTERM', () => void stop().then(() => process.exit(0)));
  // The bench died (or forgot us): a daemon must never outlive it, guarding a mount that is about to go.
  process.on('disconnect', () => void stop().then(() => process.exit(0)));
  process.on('message', async (m: HostRequest) => {
    const reply = (r: HostReply) => process.send?.(r);
    try {
      if (m.op === 'stats') reply({ id: m.id, ok: true, value: daemon.stats() });
      else if (m.op === 'scanTimes') reply({ id: m.id, ok: true, value: times.splice(0) });
      else if (m.op === 'memoryUsage') reply({ id: m.id, ok: true, value: process.memoryUsage() });
      else if (m.op === 'gc') {
        // What stays after a full collection is what the daemon keeps (the scale bench asks). --expose-gc cannot be
        // given on the command line: Piscina hands execArgv to its workers, which refuse it.
        v8.setFlagsFromString('--expose-gc');
        (runInNewContext('gc') as () => void)();
        reply({ id: m.id, ok: true, value: true });
      }
      else if (m.op === 'stop') {
        await stop();
        process.send?.({ id: m.id, ok: true, value: null } satisfies HostReply, () => process.exit(0));
      }
    } catch (err) {
      reply({ id: m.id, ok: false, error: String((err as Error)?.stack ?? err) });
    }
  });
  process.send({ id: 0, ok: true, value: 'ready' } satisfies HostReply);
}

main().catch((err) => {
  process.stderr.write(`daemon-host: ${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
});
