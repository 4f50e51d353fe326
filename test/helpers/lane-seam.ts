// The pool worker's test seam (src/pool/judge-batch.ts holdForTest): a worker stops just before it concludes a cold
// file until the file `hold` exists. Set in this process's environment before the daemon starts its pool.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

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
