// Generation bumps. A tag's generation is "<actor generation>#<bump counter>": the actor's part changes when its
// databases or rules change; the counter changes when an operator says so (`blessctl generation bump SCANNER`),
// e.g. on every boot at paranoid sites. Either change makes every older tag of that scanner stale-generation
// without touching a file.
//
// The counters live in <stateDir>/generations.json: { "version": 1, "bumps": { "<scanner>": <n> } }, replaced
// atomically (temp file + fsync + rename), so a reader sees the old or the new file, never half of one. Two bumps at
// the same instant may count once: the counter still moved past every older tag, which is all a bump promises.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TagError, errnoCode, messageOf } from './errors.js';
import { assertScannerName, isScannerName } from './names.js';

export const GENERATIONS_FILE = 'generations.json';

export type Bumps = Record<string, number>;

export function generationsPath(stateDir: string): string {
  return join(stateDir, GENERATIONS_FILE);
}

/** The generation written into tags. */
export function tagGeneration(actorGeneration: string, bump: number): string {
  return `${actorGeneration}#${bump}`;
}

/** Split a tag's generation at its last '#'; bump is null if the tag has no counter (not written by us). */
export function splitTagGeneration(generation: string): { actor: string; bump: number | null } {
  const at = generation.lastIndexOf('#');
  if (at < 0) return { actor: generation, bump: null };
  const tail = generation.slice(at + 1);
  return { actor: generation.slice(0, at), bump: /^(0|[1-9][0-9]{0,14})$/.test(tail) ? Number(tail) : null };
}

/** Read the counters; a missing file means no bumps yet. Bad content is an error naming the file and the key. */
export async function readBumps(stateDir: string): Promise<Bumps> {
  const path = generationsPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return {};
    throw new TagError('TAG_STATE_FILE', `${path}: ${messageOf(err)}`, err);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new TagError('TAG_STATE_FILE', `${path}: not JSON: ${messageOf(err)}`, err);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new TagError('TAG_STATE_FILE', `${path}: expected an object with "version" and "bumps"`);
  const { version, bumps } = data as { version?: unknown; bumps?: unknown };
  if (version !== 1) throw new TagError('TAG_STATE_FILE', `${path}: version: expected 1, got ${JSON.stringify(version)}`);
  if (typeof bumps !== 'object' || bumps === null || Array.isArray(bumps)) throw new TagError('TAG_STATE_FILE', `${path}: bumps: expected an object`);
  const out: Bumps = {};
  for (const [name, n] of Object.entries(bumps)) {
    if (!isScannerName(name)) throw new TagError('TAG_STATE_FILE', `${path}: bumps.${name}: not a scanner name`);
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new TagError('TAG_STATE_FILE', `${path}: bumps.${name}: expected a non-negative integer, got ${JSON.stringify(n)}`);
    out[name] = n;
  }
  return out;
}

async function writeBumps(stateDir: string, bumps: Bumps): Promise<void> {
  const path = generationsPath(stateDir);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(JSON.stringify({ version: 1, bumps }, null, 2) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw new TagError('TAG_STATE_FILE', `${path}: cannot write: ${messageOf(err)}`, err);
  }
}

/** Increment the scanner's counter; returns the new value. */
export async function bumpGeneration(stateDir: string, scanner: string): Promise<number> {
  assertScannerName(scanner);
  const bumps = await readBumps(stateDir);
  const next = (bumps[scanner] ?? 0) + 1;
  bumps[scanner] = next;
  await writeBumps(stateDir, bumps);
  return next;
}

/** The generations a TagStore judges against: scanner -> tagGeneration(actor generation, bump counter). */
export async function currentGenerations(stateDir: string, actorGenerations: Record<string, string>): Promise<Record<string, string>> {
  const bumps = await readBumps(stateDir);
  const out: Record<string, string> = {};
  for (const [name, gen] of Object.entries(actorGenerations)) out[name] = tagGeneration(gen, bumps[name] ?? 0);
  return out;
}
