// Finding, importing and initialising actor modules inside a worker. Built-in names resolve to actors/<name>.js next
// to this build; anything else is a path to a module.
//
// Overview — the worker's actor cache. One slot per (module, scanner name, options) holds the instance loaded last,
// with the generation it reported (for `signature`, a digest of its databases' bytes). The daemon's tasks say which
// generation they expect: a slot of another generation is loaded again from disk, so a database changed and
// reloaded (SIGHUP, `blessctl reload`) reaches every worker at its next task, not only the one that described it.
// A load for a fresh generation ("describe" at start and reload) never trusts the slot. The old instance is retired
// (close()) once its replacement loaded; a failed load keeps the old one, so a broken database at reload changes
// nothing in the workers. A scanner the stack no longer names is retired at the reload that dropped it (retireExcept:
// the pool tells every worker which slots the new stack keeps). At the pool's close every instance of the worker is
// retired (retireAll). What this file
// must not do: load twice for tasks that arrive together, or reload again and again when the disk no longer holds
// the expected generation (one attempt per expected generation).
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ACTOR_API, type ActorInstance, type ActorModule } from './actor.js';
import { checkActorInstance, checkActorModule } from './actor-api.js';
import { BUILT_IN_ACTORS_DIR } from './built-ins.js';
import { unixSockets } from './file-facts.js';
import { slotKey } from './slot-key.js';
import type { WorkerEntry } from './tasks.js';

const BUILT_IN = /^[a-z][a-z0-9_-]*$/;

/** The URL to import for an entry's `actor` string. Relative paths are taken from the daemon's cwd. */
export function actorModuleUrl(actor: string): string {
  if (BUILT_IN.test(actor)) return new URL(`${actor}.js`, BUILT_IN_ACTORS_DIR).href;
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

async function load(entry: WorkerEntry): Promise<LoadedActor> {
  const url = actorModuleUrl(entry.actor);
  let imported: { default?: unknown };
  try {
    imported = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new Error(`${entry.name}: cannot load actor ${entry.actor}: ${(err as Error).message}`, { cause: err });
  }
  const where = `${entry.name}: ${entry.actor}`;
  const module = checkActorModule(imported.default, where);
  let raw: unknown;
  try {
    raw = await module.init(entry.options ?? {}, { name: entry.name, api: ACTOR_API, unix: await unixSockets() });
  } catch (err) {
    throw new Error(`${entry.name}: ${(err as Error).message}`, { cause: err });
  }
  const instance = checkActorInstance(raw, where);
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


/** Instances whose close() ran or is running: a reload and the pool's close can meet on one instance. */
const retired = new WeakSet<ActorInstance>();

async function retire(old: LoadedActor): Promise<void> {
  if (retired.has(old.instance)) return;
  retired.add(old.instance);
  try {
    await old.instance.close?.();
  } catch {
    // A close() that throws cannot un-retire the instance; the new one is in place (or the worker ends) either way.
  }
}

/**
 * The pool is closing: retire every instance this worker holds (a load still in flight too, once it is done), and
 * forget them. Resolves once every close() has returned; the caller bounds the wait.
 */
export async function retireAll(): Promise<number> {
  const instances: Promise<LoadedActor | undefined>[] = [];
  for (const slot of slots.values()) {
    if (slot.current) instances.push(Promise.resolve(slot.current));
    if (slot.loading) instances.push(slot.loading.catch(() => undefined));
  }
  slots.clear();
  const loaded = [...new Set((await Promise.all(instances)).filter((l): l is LoadedActor => l !== undefined))];
  await Promise.all(loaded.map(retire));
  return loaded.length;
}

/**
 * A reload left these slots in the stack: retire every other instance this worker holds (a load in flight too, once
 * done). A batch of the old stack still under way may need one again: it loads it afresh. Resolves with how many.
 */
export async function retireExcept(keep: ReadonlySet<string>): Promise<number> {
  const instances: Promise<LoadedActor | undefined>[] = [];
  for (const [key, slot] of slots) {
    if (keep.has(key)) continue;
    if (slot.current) instances.push(Promise.resolve(slot.current));
    if (slot.loading) instances.push(slot.loading.catch(() => undefined));
    slots.delete(key);
  }
  const loaded = [...new Set((await Promise.all(instances)).filter((l): l is LoadedActor => l !== undefined))];
  await Promise.all(loaded.map(retire));
  return loaded.length;
}

let firstLoad: (() => void) | undefined;

/** Called once, when this worker first holds a loaded actor (worker.ts tells the pool, which waits for it at close). */
export function onFirstLoad(listener: () => void): void {
  firstLoad = listener;
}

function reloadInto(slot: Slot, entry: WorkerEntry): Promise<LoadedActor> {
  if (slot.loading) return slot.loading;
  const loading = load(entry).then(
    (next) => {
      const first = firstLoad;
      firstLoad = undefined;
      first?.();
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
