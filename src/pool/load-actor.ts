// Finding, importing and initialising actor modules inside a worker. Built-in names resolve to actors/<name>.js next
// to this build; anything else is a path to a module.
//
// Overview — the worker's actor cache. One slot per (module, scanner name, options) holds the instance loaded last,
// with the generation it reported (for `signature`, a digest of its databases' bytes). The daemon's tasks say which
// generation they expect: a slot of another generation is loaded again from disk, so a database changed and
// reloaded (SIGHUP, `blessctl reload`) reaches every worker at its next task, not only the one that described it.
// A load for a fresh generation ("describe" at start and reload) never trusts the slot. The old instance is retired
// (close()) once its replacement loaded; a failed load keeps the old one, so a broken database at reload changes
// nothing in the workers. What this file must not do: load twice for tasks that arrive together, or reload again
// and again when the disk no longer holds the expected generation (one attempt per expected generation).
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ActorInstance, ActorModule } from './actor.js';
import type { WorkerEntry } from './tasks.js';

const BUILT_IN = /^[a-z][a-z0-9_-]*$/;

/** The URL to import for an entry's `actor` string. Relative paths are taken from the daemon's cwd. */
export function actorModuleUrl(actor: string): string {
  if (BUILT_IN.test(actor)) return new URL(`../../actors/${actor}.js`, import.meta.url).href;
  if (actor.startsWith('file:')) return actor;
  return pathToFileURL(isAbsolute(actor) ? actor : resolve(actor)).href;
}

export interface LoadedActor {
  module: ActorModule;
  instance: ActorInstance;
  /** instance.generation right after init. Some actors move theirs later by themselves (clamd's VERSION). */
  loadedGeneration: string;
}

/** Does this instance stand for generation `g`: as loaded (its data), or as it says now (self-updating actors)? */
export function holds(loaded: LoadedActor, g: string): boolean {
  return loaded.loadedGeneration === g || loaded.instance.generation === g;
}

function isActorModule(m: unknown): m is ActorModule {
  const mod = m as Partial<ActorModule> | undefined;
  return !!mod && typeof mod === 'object' && typeof mod.init === 'function' && !!mod.manifest && typeof mod.manifest.name === 'string';
}

function isActorInstance(i: unknown): i is ActorInstance {
  const inst = i as Partial<ActorInstance> | undefined;
  return !!inst && typeof inst === 'object' && typeof inst.scan === 'function' && typeof inst.generation === 'string';
}

async function load(entry: WorkerEntry): Promise<LoadedActor> {
  const url = actorModuleUrl(entry.actor);
  let imported: { default?: unknown };
  try {
    imported = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new Error(`${entry.name}: cannot load actor ${entry.actor}: ${(err as Error).message}`, { cause: err });
  }
  const module = imported.default;
  if (!isActorModule(module)) {
    throw new Error(`${entry.name}: ${entry.actor} is not an actor module (its default export needs manifest and init)`);
  }
  let instance: unknown;
  try {
    instance = await module.init(entry.options ?? {}, { name: entry.name });
  } catch (err) {
    throw new Error(`${entry.name}: ${(err as Error).message}`, { cause: err });
  }
  if (!isActorInstance(instance)) {
    throw new Error(`${entry.name}: ${entry.actor} init() must return { generation: string, scan() }`);
  }
  return { module, instance, loadedGeneration: instance.generation };
}

interface Slot {
  /** The instance in use (resolved), if any load succeeded yet. */
  current?: LoadedActor;
  /** A load in progress: tasks arriving meanwhile wait for it instead of starting another. */
  loading?: Promise<LoadedActor>;
  /** Expected generations a load was already tried for; the disk gave something else (see the Overview). */
  triedFor: Set<string>;
}

const slots = new Map<string, Slot>();

function slotKey(entry: WorkerEntry): string {
  return `${entry.actor}\0${entry.name}\0${JSON.stringify(entry.options ?? {})}`;
}

async function retire(old: LoadedActor): Promise<void> {
  try {
    await old.instance.close?.();
  } catch {
    // A close() that throws cannot un-retire the instance; the new one is in place either way.
  }
}

function reloadInto(slot: Slot, entry: WorkerEntry): Promise<LoadedActor> {
  if (slot.loading) return slot.loading;
  const loading = load(entry).then(
    (next) => {
      const old = slot.current;
      slot.current = next;
      slot.triedFor.clear();
      slot.loading = undefined;
      if (old) void retire(old);
      return next;
    },
    (err: unknown) => {
      slot.loading = undefined; // not cached: the next task tries again (a database fixed on disk is picked up)
      throw err;
    },
  );
  slot.loading = loading;
  return loading;
}

export interface LoadOptions {
  /** Load from disk whatever the slot holds (describe at start and reload). */
  fresh?: boolean;
}

/**
 * The instance for this entry. With `entry.generation`, a slot of another generation is loaded again (once per
 * expected generation); the caller compares `instance.generation` with what it expected.
 */
export async function loadActor(entry: WorkerEntry, opts: LoadOptions = {}): Promise<LoadedActor> {
  const key = slotKey(entry);
  let slot = slots.get(key);
  if (!slot) {
    slot = { triedFor: new Set() };
    slots.set(key, slot);
  }
  if (opts.fresh) return reloadInto(slot, entry);
  if (slot.loading) {
    const loaded = await slot.loading;
    if (entry.generation === undefined || holds(loaded, entry.generation)) return loaded;
  }
  const current = slot.current;
  if (!current) return reloadInto(slot, entry);
  const expected = entry.generation;
  if (expected === undefined || holds(current, expected) || slot.triedFor.has(expected)) return current;
  const next = await reloadInto(slot, entry);
  if (!holds(next, expected)) slot.triedFor.add(expected);
  return next;
}
