// A cancel flag for one unit of work, cheaper than an AbortController: no EventTarget, and no DOMException built
// (with its stack) at every abort. Piscina takes it as a task's `signal` (it asks for `aborted`, `reason` and an
// EventEmitter-style once('abort') / removeListener), and the daemon's scans only ever read `aborted`.
export interface Cancelled {
  readonly aborted: boolean;
}

export class Cancel implements Cancelled {
  aborted = false;
  reason: unknown = undefined;
  #listener: (() => void) | undefined;

  /** Piscina's listener (one per task). */
  once(_event: 'abort', listener: () => void): this {
    this.#listener = listener;
    return this;
  }

  removeListener(_event: 'abort', _listener: () => void): this {
    this.#listener = undefined;
    return this;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }
}
