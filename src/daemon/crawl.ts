// Background crawl: walks the guarded trees at a bounded rate and judges files before anyone opens them, so that
// first reads find blessed files. Its scans run in the background lane (never ahead of a waiting reader), and it
// pauses while the machine runs on battery.
import { opendir, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface CrawlOptions {
  roots: string[];
  filesPerSecond: number;
  pauseOnBattery: boolean;
  /** Judge one regular file; resolves when its verdict is in (or it was skipped). */
  visit(path: string): Promise<void>;
  onDone?(stats: CrawlStats): void;
}

export interface CrawlStats {
  visited: number;
  errors: number;
  running: boolean;
  pausedOnBattery: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function onBattery(): Promise<boolean> {
  let supplies: string[];
  try {
    supplies = await readdir('/sys/class/power_supply');
  } catch {
    return false;
  }
  for (const s of supplies) {
    try {
      const type = (await readFile(join('/sys/class/power_supply', s, 'type'), 'utf8')).trim();
      const status = (await readFile(join('/sys/class/power_supply', s, 'status'), 'utf8')).trim();
      if (type === 'Battery' && status === 'Discharging') return true;
    } catch {
      /* not every supply has a status */
    }
  }
  return false;
}

export class Crawl {
  readonly stats: CrawlStats = { visited: 0, errors: 0, running: false, pausedOnBattery: false };
  private stopped = false;

  constructor(private readonly opts: CrawlOptions) {}

  start(): void {
    if (this.stats.running) return;
    this.stats.running = true;
    void this.run().finally(() => {
      this.stats.running = false;
      this.opts.onDone?.(this.stats);
    });
  }

  stop(): void {
    this.stopped = true;
  }

  private async run() {
    const gap = 1000 / Math.max(1, this.opts.filesPerSecond);
    const stack = [...this.opts.roots];
    while (stack.length > 0 && !this.stopped) {
      const dir = stack.pop()!;
      let handle;
      try {
        handle = await opendir(dir);
      } catch {
        this.stats.errors++;
        continue;
      }
      for await (const entry of handle) {
        if (this.stopped) break;
        const path = join(dir, entry.name);
        if (entry.isDirectory()) stack.push(path);
        if (!entry.isFile()) continue;
        while (this.opts.pauseOnBattery && (await onBattery()) && !this.stopped) {
          this.stats.pausedOnBattery = true;
          await sleep(10_000);
        }
        this.stats.pausedOnBattery = false;
        const started = Date.now();
        try {
          await this.opts.visit(path);
          this.stats.visited++;
        } catch {
          this.stats.errors++; // vanished, unreadable: the gate judges it when someone opens it
        }
        const wait = gap - (Date.now() - started);
        if (wait > 0) await sleep(wait);
      }
    }
  }
}
