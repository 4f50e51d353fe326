// The checks an actor module passes before blessd runs it (actor API v1, src/pool/actor.ts): one named rule at a
// time, each failure naming the scanner, the module and the rule, in the style of fastify's plugin checks. A module
// written for another API is refused here, by name, instead of failing later in ways nobody can read.
import { ACTOR_API, type ActorInstance, type ActorModule } from './actor.js';
import { PoolError } from './errors.js';

function refuse(where: string, what: string): never {
  throw new PoolError('POOL_ACTOR_API', `${where}: ${what}`);
}

/** `where` is "<scanner>: <module>". */
export function checkActorModule(m: unknown, where: string): ActorModule {
  const mod = m as Partial<ActorModule> | undefined;
  if (!mod || typeof mod !== 'object') refuse(where, 'not an actor module (its default export must be an object with manifest and init)');
  const manifest = mod.manifest as unknown as Record<string, unknown> | undefined;
  if (!manifest || typeof manifest !== 'object') refuse(where, 'not an actor module (its default export has no manifest)');
  if (manifest['api'] === undefined) {
    refuse(where, `manifest.api is missing: this blessd speaks actor API ${ACTOR_API} (add api: ${ACTOR_API} once the module follows it)`);
  }
  if (manifest['api'] !== ACTOR_API) {
    refuse(where, `manifest.api is ${JSON.stringify(manifest['api'])}, but this blessd speaks actor API ${ACTOR_API}`);
  }
  if (typeof manifest['name'] !== 'string' || manifest['name'] === '') refuse(where, 'manifest.name must be a non-empty string');
  if (typeof manifest['version'] !== 'string' || manifest['version'] === '') refuse(where, 'manifest.version must be a non-empty string');
  if ('accesses' in manifest) {
    refuse(where, 'manifest.accesses is not part of actor API 1: a verdict is about content, whatever access asked for it');
  }
  if (typeof mod.init !== 'function') refuse(where, 'init must be a function');
  return mod as ActorModule;
}

/** What init returned. */
export function checkActorInstance(i: unknown, where: string): ActorInstance {
  const inst = i as Partial<ActorInstance> | undefined;
  if (!inst || typeof inst !== 'object') refuse(where, 'init() must return an object { generation, scan }');
  if (typeof inst.generation !== 'string') refuse(where, 'init() must return a string generation');
  if (typeof inst.scan !== 'function') refuse(where, 'init() must return a scan function');
  for (const hook of ['close', 'currentGeneration', 'helperPids'] as const) {
    if (inst[hook] !== undefined && typeof inst[hook] !== 'function') refuse(where, `${hook} must be a function when present`);
  }
  return inst as ActorInstance;
}
