// The recording half of the fake InodeServices in the inode unit tests: each request the code under test makes is
// recorded by name, and a test waits for the one it expects with a bound that fails it.
export class Recorder {
  readonly calls: string[] = [];
  private watchers: (() => void)[] = [];

  protected record(call: string) {
    this.calls.push(call);
    for (const w of this.watchers.splice(0)) w();
  }

  /** Resolves once `pred` holds (checked after every recorded request); fails the test after `ms`. */
  until(pred: () => boolean, what: string, ms = 5_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; calls: ${this.calls.join(', ')}`)), ms);
      const check = () => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else this.watchers.push(check);
      };
      this.watchers.push(check);
    });
  }
}
