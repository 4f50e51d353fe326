#!/usr/bin/env node
// blessd-index-search DATABASE QUERY: the indexed files whose text matches an FTS5 query, best first, one per line
// ("path<TAB>size<TAB>sha256"). --json: one object per line. Files whose content changed since they were indexed
// (follow.js marks them) are left out; --stale includes them. Reads only; safe while blessd writes.
import { openIndex } from './schema.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const stale = args.includes('--stale');
const [database, query] = args.filter((a) => a !== '--json' && a !== '--stale');
if (!database || !query) {
  process.stderr.write('Usage: blessd-index-search DATABASE QUERY [--json] [--stale]\n');
  process.exit(2);
}
const db = openIndex(database, { readonly: true });
try {
  const rows = db
    .prepare('SELECT f.path, f.size, f.sha256, snippet(content, 1, \'[\', \']\', \'…\', 8) AS snippet FROM content JOIN files f ON f.path = content.path WHERE content MATCH ? AND (? OR f.stale = 0) ORDER BY rank')
    .all(query, stale ? 1 : 0);
  for (const r of rows) process.stdout.write(json ? JSON.stringify(r) + '\n' : `${r.path}\t${r.size}\t${r.sha256}\n`);
} catch (err) {
  process.stderr.write(`blessd-index-search: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  db.close();
}
