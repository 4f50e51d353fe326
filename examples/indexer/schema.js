// The index: one row per file in `files` (what was indexed, of which content; `stale` = 1 once follow.js heard
// that the content changed, until the actor indexes it again), its text in the FTS5 table `content`. Shared by
// the actor and follow.js (writes) and search.js (reads).
import Database from 'better-sqlite3';

export const SCHEMA_VERSION = 1;

/** Open (and create) the index. WAL: every worker thread of the daemon writes, search.js reads meanwhile. */
export function openIndex(path, { readonly = false } = {}) {
  const db = new Database(path, { readonly, fileMustExist: readonly });
  db.pragma('busy_timeout = 5000');
  if (readonly) return db;
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS files (
      path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER, mtime_ns TEXT, sha256 TEXT,
      kind TEXT NOT NULL, indexed_at INTEGER NOT NULL, stale INTEGER NOT NULL DEFAULT 0);
    CREATE VIRTUAL TABLE IF NOT EXISTS content USING fts5(path UNINDEXED, body);
  `);
  return db;
}
