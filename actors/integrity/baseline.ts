// The baseline file of the integrity actor: what each file's content is supposed to be. Written by
// `blessctl baseline`, read by actors/integrity.ts. A text file, one file per line, sorted by path:
//
//   # blessd baseline 1 sha256
//   <sha256 hex> <size> <dev>:<ino> <path>
//
// The path runs to the end of the line; a backslash and a newline in it are written `\\` and `\n`. dev:ino are
// those of the file when it was recorded: they let a hard link of a baselined file be found under another path.
// Every parse error names file:line.
import { ActorError } from '../common/errors.js';

export const BASELINE_HEADER = '# blessd baseline 1 sha256';

export interface BaselineEntry {
  sha256: string;
  size: number;
  dev: number;
  ino: number;
}

/** Path → entry. */
export type Baseline = Map<string, BaselineEntry>;

export function escapePath(path: string): string {
  return path.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function unescapePath(s: string, where: string): string {
  return s.replace(/\\(.?)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new ActorError('ACTOR_DATABASE', `${where}: bad escape \\${c} in the path (only \\\\ and \\n)`);
  });
}

const LINE = /^([0-9a-f]{64}) (\d+) (\d+):(\d+) (\/.*)$/;

export function parseBaseline(text: string, file: string): Baseline {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines[0] !== BASELINE_HEADER) {
    throw new ActorError('ACTOR_DATABASE', `${file}:1: not a blessd baseline (the first line must be "${BASELINE_HEADER}")`);
  }
  const out: Baseline = new Map();
  for (let i = 1; i < lines.length; i++) {
    const where = `${file}:${i + 1}`;
    const line = lines[i]!;
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new ActorError('ACTOR_DATABASE', `${where}: expected "<sha256> <size> <dev>:<ino> <absolute path>"`);
    const path = unescapePath(m[5]!, where);
    if (out.has(path)) throw new ActorError('ACTOR_DATABASE', `${where}: ${JSON.stringify(path)} is listed twice`);
    out.set(path, { sha256: m[1]!, size: Number(m[2]), dev: Number(m[3]), ino: Number(m[4]) });
  }
  return out;
}

export function formatBaseline(b: Baseline): string {
  const paths = [...b.keys()].sort();
  const body = paths.map((p) => {
    const e = b.get(p)!;
    return `${e.sha256} ${e.size} ${e.dev}:${e.ino} ${escapePath(p)}`;
  });
  return [BASELINE_HEADER, ...body, ''].join('\n');
}

/** dev:ino → path, for files that have hard links (nlink > 1 when they are scanned). */
export function byInode(b: Baseline): Map<string, string> {
  const m = new Map<string, string>();
  for (const [path, e] of b) m.set(`${e.dev}:${e.ino}`, path);
  return m;
}
