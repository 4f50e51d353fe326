// systemd's notify protocol, for `Type=notify` units: READY=1 once every guard is in place, STATUS= lines, a
// WATCHDOG=1 ping from the main thread (so a stalled event loop is what systemd notices and restarts), STOPPING=1.
// Outside systemd (no NOTIFY_SOCKET) every call does nothing. A failed send is logged once and never stops blessd:
// the gate matters more than the service manager's view of it.
import { native } from '../gate/addon.js';
import type { Logger } from './logger.js';

export class SystemdNotifier {
  private readonly socket: string | undefined;
  private watchdog?: NodeJS.Timeout;
  private warned = false;

  constructor(
    private readonly log: Logger,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.socket = env['NOTIFY_SOCKET'] || undefined;
    // WATCHDOG_PID names the process the watchdog is for; a child that inherited the variable is not it.
    const usec = Number(env['WATCHDOG_USEC']);
    const forUs = env['WATCHDOG_PID'] === undefined || Number(env['WATCHDOG_PID']) === process.pid;
    if (this.socket && forUs && Number.isFinite(usec) && usec > 0) this.watchdogMs = Math.max(1, Math.floor(usec / 2000));
  }

  /** Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; undefined when no watchdog is asked for. */
  readonly watchdogMs: number | undefined;

  get enabled(): boolean {
    return this.socket !== undefined;
  }

  ready(status: string): void {
    this.send(`READY=1\nSTATUS=${oneLine(status)}\nMAINPID=${process.pid}`);
    if (this.watchdogMs !== undefined && !this.watchdog) {
      // A timer on the main thread on purpose: if JavaScript stalls, the pings stop and systemd acts.
      this.watchdog = setInterval(() => this.send('WATCHDOG=1'), this.watchdogMs);
      this.watchdog.unref();
    }
  }

  status(status: string): void {
    this.send(`STATUS=${oneLine(status)}`);
  }

  reloading(): void {
    this.send(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`);
  }

  reloaded(status: string): void {
    this.send(`READY=1\nSTATUS=${oneLine(status)}`);
  }

  stopping(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
    this.send('STOPPING=1\nSTATUS=stopping: answering every waiting access');
  }

  private send(message: string): void {
    if (!this.socket) return;
    try {
      native.sendDatagram(this.socket, Buffer.from(message));
    } catch (err) {
      if (!this.warned) this.log.warn({ err: (err as Error).message, socket: this.socket }, 'cannot notify systemd (further failures are not logged)');
      this.warned = true;
    }
  }
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

function monotonicUsec(): string {
  return (process.hrtime.bigint() / 1000n).toString();
}
