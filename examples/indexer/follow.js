#!/usr/bin/env node
// blessd-index-follow SOCKET DATABASE: keep the index honest between a change and its re-indexing. Subscribes to
// blessd's dirty notices (docs/protocol.md) and marks the changed file's row stale — by path, and by dev:ino for a
// file reached under another name — so search.js stops returning words the file no longer holds. The indexer
// actor clears the mark when blessd hands it the new content (after the writer closed the file).
// Prints "following" once subscribed, then "stale PATH" per marked file.
import { createConnection } from 'node:net';
import { createInterface } from 'node:readline';
import { openIndex } from './schema.js';

const [socket, database] = process.argv.slice(2);
if (!socket || !database) {
  process.stderr.write('Usage: blessd-index-follow SOCKET DATABASE\n');
  process.exit(2);
}
const db = openIndex(database);
const mark = db.prepare('UPDATE files SET stale = 1 WHERE (path = ? OR (dev = ? AND ino = ?)) AND stale = 0');
const conn = createConnection(socket);
conn.on('error', (err) => {
  process.stderr.write(`blessd-index-follow: ${socket}: ${err.message}\n`);
  process.exit(1);
});
conn.on('close', () => {
  process.stderr.write('blessd-index-follow: the daemon closed the connection\n');
  process.exit(1);
});
conn.write(JSON.stringify({ v: 1, id: 1, op: 'subscribe', verdicts: false }) + '\n');
for await (const line of createInterface({ input: conn })) {
  const m = JSON.parse(line);
  if (m.id === 1) {
    if (!m.ok) throw new Error(`subscribe: ${m.error?.message}`);
    console.log('following');
  } else if (m.event === 'lost') {
    // Notices were dropped: which files changed is unknown, so nothing indexed can be trusted until re-indexed.
    db.prepare('UPDATE files SET stale = 1').run();
    console.log(`lost ${m.count}: every row marked stale`);
  } else if (m.event === 'dirty') {
    if (mark.run(m.path, m.dev, m.ino).changes > 0) console.log(`stale ${m.path}`);
  }
}
