// The built-in actors are the modules directly in actors/: a built-in is added by dropping one file there, with no
// list to edit. The config loader asks for the names (what `actor:` may say without a path); the worker imports
// them from the same directory.
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const BUILT_IN_ACTORS_DIR = new URL('../../actors/', import.meta.url);
const NAME = /^[a-z][a-z0-9_-]*$/;

/** Names of the built-in actor modules, sorted. */
export function builtInActorNames(): string[] {
  return readdirSync(fileURLToPath(BUILT_IN_ACTORS_DIR), { withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.js'))
    .map((d) => d.name.slice(0, -'.js'.length))
    .filter((n) => NAME.test(n))
    .sort();
}
