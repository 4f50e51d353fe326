// The rule sources of a yara entry: files, or directories searched recursively for *.yar / *.yara, read once,
// in a fixed order (so the digest, the generation, does not depend on readdir order).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ActorError } from '../common/errors.js';

export interface RuleSource {
  path: string;
  text: string;
}

const RULE_FILE = /\.ya?ra?$/i; // .yar, .yara (and .yr)

function walk(dir: string, out: string[]) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) walk(p, out);
    else if (st.isFile() && RULE_FILE.test(name)) out.push(p);
  }
}

export function readRuleSources(actor: string, paths: string[]): RuleSource[] {
  const files: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch (err) {
      throw new ActorError('ACTOR_DATABASE', `${actor}: cannot read rules ${p}: ${(err as Error).message}`, { cause: err });
    }
    if (st.isDirectory()) {
      const before = files.length;
      walk(p, files);
      if (files.length === before) throw new ActorError('ACTOR_DATABASE', `${actor}: no *.yar or *.yara files under ${p}`);
    } else files.push(p);
  }
  return files.map((path) => {
    try {
      return { path, text: readFileSync(path, 'utf8') };
    } catch (err) {
      throw new ActorError('ACTOR_DATABASE', `${actor}: cannot read rules ${path}: ${(err as Error).message}`, { cause: err });
    }
  });
}

/** The generation: what the rules say, not where they live — the engine version, then each file's name and text. */
export function rulesDigest(engineVersion: string, sources: RuleSource[]): string {
  const h = createHash('sha256').update(`yara-x ${engineVersion}\0`);
  for (const s of sources) h.update(`${s.path}\0${s.text}\0`);
  return h.digest('hex');
}

/**
 * yara-x names the place of an error `--> line:L:C` (the source has no name of its own here): say which file.
 * The result reads `file:L:C: error[E025]: unknown pattern `$x``, the first line of yara-x's report.
 */
export function placeError(path: string, message: string): string {
  const first = message.split('\n')[0].trim();
  const at = /-->\s*line:(\d+):(\d+)/.exec(message);
  return at ? `${path}:${at[1]}:${at[2]}: ${first}` : `${path}: ${first}`;
}
