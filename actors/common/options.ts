// Option checks at the actor boundary: one named check per option, each error naming the actor and the option
// (`signature: options.databases must be a non-empty array of paths`), in the style of piscina's constructor.
import { globMatcher, globToRegExp } from '../../src/config/glob.js';
import { ActorError } from './errors.js';

type Options = Record<string, unknown>;

function fail(actor: string, key: string, must: string): never {
  throw new ActorError('ACTOR_OPTIONS', `${actor}: options.${key} must be ${must}`);
}

/** Options must be a plain object (a missing `options:` block counts as empty). */
export function optionsObject(actor: string, options: unknown): Options {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new ActorError('ACTOR_OPTIONS', `${actor}: options must be an object`);
  }
  return options as Options;
}

/** An array of non-empty strings; `undefined` when absent and not required. */
export function stringArray(actor: string, options: Options, key: string, what: string, required: boolean): string[] | undefined {
  const v = options[key];
  if (v === undefined && !required) return undefined;
  const must = `${required ? 'a non-empty' : 'an'} array of ${what}`;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) fail(actor, key, must);
  if (required && v.length === 0) fail(actor, key, must);
  return v as string[];
}

export function requiredString(actor: string, options: Options, key: string, what: string): string {
  const v = options[key];
  if (typeof v !== 'string' || v === '') fail(actor, key, what);
  return v;
}

export function positiveInteger(actor: string, options: Options, key: string, fallback: number): number {
  const v = options[key];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) fail(actor, key, 'a positive integer');
  return v;
}

/** A map of string to string (environment variables). */
export function stringRecord(actor: string, options: Options, key: string): Record<string, string> | undefined {
  const v = options[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((s) => typeof s !== 'string')) {
    fail(actor, key, 'an object of string values');
  }
  return v as Record<string, string>;
}

/** Options this actor does not know are mistakes (a typo would otherwise silently weaken a policy). */
export function noOtherKeys(actor: string, options: Options, known: string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new ActorError('ACTOR_OPTIONS', `${actor}: unknown option options.${key} (known: ${known.join(', ')})`);
    }
  }
}

/** A matcher for a list of globs (src/config/glob.ts, the one dialect); a bad glob names the option and index. */
export function globsOption(actor: string, key: string, globs: readonly string[]): (path: string) => boolean {
  globs.forEach((g, i) => {
    try {
      globToRegExp(g);
    } catch (err) {
      throw new ActorError('ACTOR_OPTIONS', `${actor}: options.${key}[${i}]: ${(err as Error).message}`);
    }
  });
  return globMatcher(globs);
}
