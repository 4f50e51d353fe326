// Runs probeNamespace in its own process (tags-namespace.test.ts starts it without CAP_SYS_ADMIN).
// argv: dir preferred. Prints the result, or { error, code } — as JSON on one line.
import { probeNamespace } from '../../src/tags/namespace.js';
import type { TagNamespace } from '../../src/tags/names.js';

try {
  const result = await probeNamespace(process.argv[2]!, process.argv[3] as TagNamespace);
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: (err as Error).message, code: (err as { code?: string }).code }) + '\n');
}
