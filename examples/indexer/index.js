// blessd-actor-indexer: a full-text index of the guarded files, kept by blessd itself. Run it as an `observe`
// entry: blessd hands it every file version once (at its first access, and again after each change, when the
// writer has closed it), never waits for it, and never lets it gate — it answers "no comment" (`ok`) always.
// Its tag (`scanned-by.index`) says which file versions are indexed; a restart re-indexes nothing that still is.
//
// options: database: string       the SQLite file (absolute path), created if missing
//          maxTextBytes?: number  how much of a text file is indexed (default 1 MiB); binaries: metadata only
//
// Why SQLite through better-sqlite3: one file, FTS5 built in, synchronous calls that suit a worker thread, and a
// maintained binding whose 12.x line supports Node 20. Each worker thread opens its own connection (WAL).
import { createHash } from 'node:crypto';
import { openIndex, SCHEMA_VERSION } from './schema.js';

const DEFAULT_TEXT = 1 << 20;

/** Text: no NUL byte and valid UTF-8 in what we read (cut at a character boundary). */
function asText(buf) {
  if (buf.includes(0)) return null;
  let end = buf.length;
  // A cut in the middle of a multi-byte character is not an encoding error: drop the partial tail.
  for (let back = 0; back < 3 && end > 0 && (buf[end - 1] & 0xc0) === 0x80; back++) end--;
  if (end > 0 && buf[end - 1] >= 0xc0) end--;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, end));
  } catch {
    return null;
  }
}

const indexer = {
  manifest: { api: 1, name: 'index', version: '1.0.0' },

  init(options, context) {
    const scanner = context?.name ?? 'index';
    const database = options.database;
    if (typeof database !== 'string' || !database.startsWith('/')) throw new Error(`${scanner}: options.database must be an absolute path`);
    const maxText = options.maxTextBytes ?? DEFAULT_TEXT;
    if (!Number.isSafeInteger(maxText) || maxText <= 0) throw new Error(`${scanner}: options.maxTextBytes must be a positive integer`);
    for (const key of Object.keys(options)) {
      if (key !== 'database' && key !== 'maxTextBytes') throw new Error(`${scanner}: unknown option options.${key}`);
    }
    const db = openIndex(database);
    const upsert = db.transaction((row, body) => {
      db.prepare('INSERT OR REPLACE INTO files (path, dev, ino, size, mtime_ns, sha256, kind, indexed_at, stale) VALUES (@path, @dev, @ino, @size, @mtime_ns, @sha256, @kind, @indexed_at, 0)').run(row);
      db.prepare('DELETE FROM content WHERE path = ?').run(row.path);
      if (body !== null) db.prepare('INSERT INTO content (path, body) VALUES (?, ?)').run(row.path, body);
    });

    return {
      // A new database or schema is a new index: every file is indexed again at its next access.
      generation: `indexer:${SCHEMA_VERSION}:${database}:${maxText}`,
      async scan(file) {
        const st = await file.stat();
        const hash = createHash('sha256');
        const head = [];
        let kept = 0;
        for await (const chunk of file.chunks()) {
          hash.update(chunk);
          if (kept < maxText) {
            head.push(chunk.subarray(0, maxText - kept));
            kept += Math.min(chunk.length, maxText - kept);
          }
        }
        const body = asText(Buffer.concat(head));
        upsert(
          { path: file.path, dev: st.dev, ino: st.ino, size: file.size, mtime_ns: String(st.mtimeNs), sha256: hash.digest('hex'), kind: body === null ? 'binary' : 'text', indexed_at: Date.now() },
          body,
        );
        return { answer: 'ok' };
      },
      close() {
        db.close();
      },
    };
  },
};

export default indexer;
