// A counting semaphore: at most `slots` holders at once, the rest wait in order.
export class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private slots: number) {}

  acquire(): Promise<void> {
    if (this.slots > 0) {
      this.slots--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.slots++;
  }
}
