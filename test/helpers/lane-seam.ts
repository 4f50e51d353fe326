// The pool worker's test seam (src/pool/judge-batch.ts holdForTest): a worker stops just before it concludes a cold
// file until the file `hold` exists. Set in this process's environment before the daemon starts its pool.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import { startChild, type ChildResult } from './child.js';
import { FIXTURES, type DaemonHarness } from './daemon-harness.js';
import { waitFor, within } from './wait.js';

/** Arms the seam for this test; returns the path whose creation lets the held worker go (also at teardown). */
export function laneSeam(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-lane-'));
  const hold = join(dir, 'hold');
  process.env['BLESSD_TEST_LANE_HOLD'] = hold;
  t.teardown(() => {
    delete process.env['BLESSD_TEST_LANE_HOLD'];
    writeFileSync(hold, ''); // a worker still held lets go
    rmSync(dir, { recursive: true, force: true });
  });
  return hold;
}

/** A guarded directory's files for the lane's attack tests: eicar.com, and clean0.txt … clean{n-1}.txt. */
export async function eicarAndClean(dir: string, n: number, eicar: string | Buffer): Promise<void> {
  await writeFile(join(dir, 'eicar.com'), eicar);
  for (let i = 0; i < n; i++) await writeFile(join(dir, `clean${i}.txt`), `clean ${i}\n`);
}

/**
 * The lane's reload race: `file` (containing RELOAD-ME) is read, the worker judges it clean with the old stack
 * (signature + default) and stands just before concluding; then a stack that denies RELOAD-ME is loaded, and the
 * worker goes on. `atHold` runs while it stands. Resolves with the reader's result, for the caller's stage to judge.
 */
export async function reloadMidConclusion(h: DaemonHarness, hold: string, file: string, atHold: () => void = () => {}): Promise<ChildResult> {
  const strict = parseConfig(
    `stateDir: ${h.state}\nguards: [{ path: ${h.dir}, kind: filesystem }]\nsocket: { path: ${join(h.scratch.base, 's')} }\nstack:\n  - actor: ${join(FIXTURES, 'word-actor.js')}\n    name: word\n    options: { word: RELOAD-ME }\n  - actor: default\n    options: { answer: allow }`,
    join(h.scratch.base, 'c.yaml'),
  );
  const reader = startChild('cat', [file]);
  await waitFor('the worker to reach its conclusion', () => existsSync(`${hold}.reached`));
  atHold();
  await within('the reload', h.daemon.reload(strict), 20_000);
  writeFileSync(hold, '');
  return within('the reader to be answered', reader.done, 20_000);
}
