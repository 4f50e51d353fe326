// A bounded wait on a condition (a counter, a line of output): resolves once it holds, and FAILS the test with
// `what` when it does not within timeoutMs. For conditions that have no event to wait on.
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000, everyMs = 10): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
