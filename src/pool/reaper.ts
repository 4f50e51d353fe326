// Reaping the scanner programs of given-up scans. A program an exec actor spawned is a child of this process, waited
// for by the event loop of the worker that spawned it; when the pool gives the scan up, that worker is destroyed and
// nobody would wait for the killed child: it would stay a zombie until the daemon exits (one per hung scan).
// Each killed group leader is held by a pidfd from the moment it is killed (native/proc/pidfd.cc: pids are reused,
// a pidfd is not) and reaped from the main thread as soon as it has exited. A leader the dying worker reaped itself
// shows as 'gone'. Nothing here blocks: every wait is WNOHANG, retried on an unref'd timer.
import { closeSync } from 'node:fs';
import { native } from '../gate/addon.js';

/** How long a killed leader is looked after; SIGKILL ends a process in milliseconds, unless it is stuck in the kernel. */
const WATCH_MS = 60_000;
const FIRST_LOOK_MS = 20;
const MAX_LOOK_MS = 2_000;

export class Reaper {
  /** pid -> its pidfd and until when it is looked after. */
  private readonly held = new Map<number, { fd: number; until: number }>();
  private timer: NodeJS.Timeout | undefined;
  private nextMs = FIRST_LOOK_MS;
  reaped = 0;

  /** A group leader this process spawned was just killed: reap it once it has exited. */
  track(pid: number): void {
    if (pid <= 1 || this.held.has(pid)) return;
    const fd = native.pidfdOpen(pid);
    if (fd < 0) return; // reaped already (its worker was alive to wait for it)
    this.held.set(pid, { fd, until: Date.now() + WATCH_MS });
    this.nextMs = FIRST_LOOK_MS;
    this.schedule();
  }

  /** Reap what has exited; returns how many are still held. */
  sweep(): number {
    const now = Date.now();
    for (const [pid, h] of this.held) {
      const r = native.pidfdReap(h.fd);
      if (r === 'running' && now < h.until) continue;
      if (r === 'reaped') this.reaped++;
      closeSync(h.fd);
      this.held.delete(pid);
    }
    return this.held.size;
  }

  /** Stop looking (pool closed): reap what exits within `boundMs` (SIGKILL was sent), then the pidfds go. */
  async close(boundMs = 2_000): Promise<void> {
    const until = Date.now() + boundMs;
    while (this.sweep() > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, FIRST_LOOK_MS));
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const h of this.held.values()) closeSync(h.fd);
    this.held.clear();
  }

  private schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.sweep() === 0) return;
      this.nextMs = Math.min(this.nextMs * 2, MAX_LOOK_MS);
      this.schedule();
    }, this.nextMs);
    this.timer.unref();
  }
}
