// What the socket server may ask of the daemon: a narrow surface, like InodeServices for the machines. The daemon
// implements it in Daemon.control(); the server never reaches into daemon internals.
import type { Config, StackEntry } from '../config/types.js';
import type { DaemonStats } from '../daemon/stats.js';
import type { Explanation } from '../daemon/explain.js';
import type { CostAxis, CostRow } from '../daemon/costs.js';
import type { TagReport } from '../tags/report.js';
import type { RemoteScanners } from './remote-scanners.js';

export interface DaemonControl {
  /** Who hears verdict notices changed (a subscriber for verdicts came or went): the native lane follows. */
  hearingChanged?(): void;
  config(): Config;
  /** The effective stack: config, must-pass links and registered remote scanners. */
  stack(): readonly StackEntry[];
  /** Current tag generation per scanner (actor generation + bump counter). */
  generations(): Readonly<Record<string, string>>;
  stats(): DaemonStats;
  pool(): { threads: number; queued: number; running: number; utilization: number };
  /** The tags of an open file, judged with the daemon's own key and generations. */
  readTags(fd: number): Promise<TagReport>;
  /**
   * Judge a file now: its inode machine reads tags and scans what is missing, then emits a 'verdict' notice
   * (matched by dev and ino). Takes ownership of `fd`. Returns false if a machine was already live (it will
   * emit the verdict itself).
   */
  judge(fd: number): boolean;
  /** Whether the open file lies under one of the guards (only such files are judged on demand). */
  covers(fd: number): boolean;
  /** Why the open file gets its verdict, entry by entry (read-only; `scan` runs missing scanners, tags nothing). */
  explain(fd: number, path: string, opts: { scan: boolean }): Promise<Explanation>;
  /** Who costs what since start: the top rows of one table. */
  costs(by: CostAxis, top: number, sort: keyof Omit<CostRow, 'key'>): CostRow[];
  /** After a generation bump in stateDir: reload the bump counters and forget every cached verdict. */
  refreshGenerations(): Promise<void>;
  remote: RemoteScanners;
}
