// Make files unscanned again between bench phases: remove every verdict tag (both namespaces) from a tree.
// Only called while no daemon runs, on the bench's own mount.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { native } from '../../src/gate/addon.js';
import { parseTagName } from '../../src/tags/names.js';

export async function clearTags(dir: string): Promise<number> {
  let removed = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) removed += await clearTags(p);
    else if (e.isFile()) for (const name of native.listXattr(p)) if (parseTagName(name) && native.removeXattr(p, name)) removed++;
  }
  return removed;
}
