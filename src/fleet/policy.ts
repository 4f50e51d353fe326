// Main thread: the fleet part of the judge policy, made once at start (the key is read then), and the judge policy
// with it, made once per judge policy (policy-wire.ts sends a policy object once and refers to it by id after: the
// same input must give the same object back).
import type { Config } from '../config/types.js';
import type { JudgePolicy } from '../pool/tasks.js';
import { FleetCounters } from './counters.js';
import { loadFleetKey } from './key.js';
import { notServedBecause } from './scope.js';
import type { FleetPolicy } from './share.js';
import { parseStoreUrl } from './store-url.js';
import { loadStoreTls } from './tls.js';

export interface Fleet {
  policy: FleetPolicy;
  counters: FleetCounters;
}

/** Null when fleet.store is not set. Throws (naming the key and file) when the key or a fleet.tls file cannot be used. */
export async function openFleet(c: Config['fleet']): Promise<Fleet | null> {
  if (c.store === null) return null;
  const key = await loadFleetKey(c.keyFile);
  const target = parseStoreUrl(c.store);
  // Read here, once: a worker's client gets the PEM text and never meets a missing file mid-run.
  const tls = !('problem' in target) && target.tls ? await loadStoreTls(c.tls) : undefined;
  const counters = new FleetCounters();
  const policy: FleetPolicy = { url: c.store, key: new Uint8Array(key), timeoutMs: c.timeout, ttlS: Math.max(1, Math.round(c.ttl / 1000)), origin: c.host, counts: counters.shared, ...(tls && { tls }) };
  return { policy, counters };
}

const joined = new WeakMap<JudgePolicy, JudgePolicy>();

/** The judge policy with the fleet store for the scanners it serves (scope.ts); without it when it serves none. */
export function withFleet(policy: JudgePolicy, fleet: Fleet | null): JudgePolicy {
  if (!fleet) return policy;
  let p = joined.get(policy);
  if (!p) {
    const served = policy.scanners.filter((s) => notServedBecause(s.actor) === undefined).map((s) => s.name);
    p = served.length === 0 ? policy : { ...policy, fleet: { ...fleet.policy, served } };
    joined.set(policy, p);
  }
  return p;
}

