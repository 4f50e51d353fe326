// Finding, importing and initialising actor modules inside a worker, once per (module, scanner name, options).
// Built-in names resolve to actors/<name>.js next to this build; anything else is a path to a module.
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
}

function isActorModule(m: unknown): m is ActorModule {
  const mod = m as Partial<ActorModule> | undefined;
  return !!mod && typeof mod === 'object' && typeof mod.init === 'function' && !!mod.manifest && typeof mod.manifest.name === 'string';
}

function isActorInstance(i: unknown): i is ActorInstance {
  const inst = i as Partial<ActorInstance> | undefined;
  return !!inst && typeof inst === 'object' && typeof inst.scan === 'function' && typeof inst.generation === 'string';
}

// Promises, so that two tasks arriving together do not init twice. A failure is not cached: the next task retries
// (a database fixed on disk is then picked up).
const cache = new Map<string, Promise<LoadedActor>>();

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
  return { module, instance };
}

export function loadActor(entry: WorkerEntry): Promise<LoadedActor> {
  const key = `${entry.actor}\0${entry.name}\0${JSON.stringify(entry.options ?? {})}`;
  let loaded = cache.get(key);
  if (!loaded) {
    loaded = load(entry);
    cache.set(key, loaded);
    loaded.catch(() => cache.delete(key));
  }
  return loaded;
}
