// What a reload may change in a running daemon, and what only a restart applies. Owns that split and nothing else:
// the daemon keeps the started value of every start-only key, so that no part runs on a mix of two configs (the tag
// store's key and stamp, the gate's marks and deadlines, the listeners' sockets, the pool's thread count), and the
// caller is told which changed keys wait for a restart instead of having them dropped in silence.
import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../config/types.js';

/** Sections fixed at start as a whole: they name kernel marks, sockets, keys, servers and threads already made. */
const START_ONLY_SECTIONS = ['stateDir', 'tags', 'guards', 'gate', 'socket', 'metrics', 'farm', 'crawl', 'fleet'] as const;
/** Keys fixed at start inside sections whose other keys a reload applies. */
const START_ONLY_KEYS = { pool: ['threads'] } as const;

export interface ReloadScope {
  /** The configuration to run on: `next`, with every start-only key as it was started. */
  config: Config;
  /** Dotted names of the start-only keys `next` changes (e.g. "gate.deadline", "guards"): applied at the next restart. */
  restartNeeded: string[];
}

export function reloadScope(running: Config, next: Config): ReloadScope {
  const restartNeeded: string[] = [];
  const config = { ...next } as Record<string, unknown>;
  for (const section of START_ONLY_SECTIONS) {
    restartNeeded.push(...changedKeys(section, running[section], next[section]));
    config[section] = running[section];
  }
  for (const [section, keys] of Object.entries(START_ONLY_KEYS) as [keyof typeof START_ONLY_KEYS, readonly string[]][]) {
    const kept = { ...next[section] } as Record<string, unknown>;
    for (const key of keys) {
      const was = (running[section] as Record<string, unknown>)[key];
      if (!same(was, kept[key])) restartNeeded.push(`${section}.${key}`);
      kept[key] = was;
    }
    config[section] = kept;
  }
  return { config: config as unknown as Config, restartNeeded };
}

/** `section` itself when it is not an object of keys (a list, a path), else each of its keys that differ. */
function changedKeys(section: string, was: unknown, now: unknown): string[] {
  if (same(was, now)) return [];
  if (!isPlainObject(was) || !isPlainObject(now)) return [section];
  const keys = new Set([...Object.keys(was), ...Object.keys(now)]);
  return [...keys].filter((k) => !same(was[k], now[k])).map((k) => `${section}.${k}`);
}

/** Equal as settings: where a value was written (`origin`, file:line:col) is not part of it. */
function same(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(withoutOrigins(a), withoutOrigins(b));
}

function withoutOrigins(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutOrigins);
  if (!isPlainObject(v)) return v;
  return Object.fromEntries(Object.entries(v).filter(([k]) => k !== 'origin').map(([k, x]) => [k, withoutOrigins(x)]));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
