// The README's example actor does what it says, through the real pool.
import test from 'ava';
import { openSync, closeSync, writeFileSync, mkdtempSync, rmSync, fstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScanPool } from '../src/pool/scan-pool.js';

test('actors/examples/deny-word denies a word split across chunks and passes the rest', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-ex-'));
  const pool = new ScanPool({ threads: 1, chunkSize: 64 });
  t.teardown(async () => {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const entry = { name: 'deny-word', actor: join(process.cwd(), 'dist/actors/examples/deny-word.js'), options: { word: 'DO-NOT-RUN' } };
  const scan = async (content: string) => {
    const f = join(dir, 'f');
    writeFileSync(f, content);
    const fd = openSync(f, 'r');
    try {
      return await pool.scan({ fd, size: fstatSync(fd).size, path: f }, entry, { timeoutMs: 5000 });
    } finally {
      closeSync(fd);
    }
  };
  const bad = await scan('x'.repeat(60) + 'DO-NOT-RUN' + 'y'.repeat(100));
  t.like(bad, { kind: 'answer', answer: 'deny', reason: 'contains DO-NOT-RUN' });
  t.like(await scan('harmless'.repeat(50)), { kind: 'answer', answer: 'ok' });
});
