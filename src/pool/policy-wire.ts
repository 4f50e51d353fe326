// Overview — how a judge task's policy crosses to the workers: once per policy, not once per task.
// The daemon builds a JudgePolicy only when the stack, the generations or the config change (stack-state.ts), and
// the same object goes with every batch. Structured-cloning it per task cost the main thread ~20 µs per
// postMessage and the worker as much again to rebuild it (measured: a policy of one scanner, node 20). So the pool
// serialises it once (v8.serialize: the same structured-clone semantics, Uint8Array key included) into a
// SharedArrayBuffer, and each task carries only that buffer's handle and an id; a worker deserialises an id it has
// not seen yet and keeps the last few. The scan counters are a SharedArrayBuffer of their own (v8.serialize cannot
// hold one): they ride beside the bytes.
// Must not: hand a worker a policy other than the task's (ids are never reused in a process), or grow unbounded.
import { deserialize, serialize } from 'node:v8';
import type { JudgePolicy } from './tasks.js';

/** What a judge task carries in place of its policy. */
export interface PolicyRef {
  /** Unique per policy object in this process. */
  id: number;
  /** v8.serialize of the policy without scanCounts. */
  bytes: SharedArrayBuffer;
  scanCounts?: SharedArrayBuffer;
  fleetCounts?: SharedArrayBuffer;
}

const encoded = new WeakMap<JudgePolicy, PolicyRef>();
let nextId = 1;

/** Main side: the policy's wire form, built at its first use. A policy must not be mutated once sent. */
export function policyRef(policy: JudgePolicy): PolicyRef {
  let ref = encoded.get(policy);
  if (!ref) {
    const { scanCounts, ...rest } = policy;
    // The fleet's counters are shared memory too (src/fleet/counters.ts): they ride beside the bytes as well.
    const fleetCounts = rest.fleet?.counts;
    if (rest.fleet) rest.fleet = { ...rest.fleet, counts: undefined };
    const data = serialize(rest);
    const bytes = new SharedArrayBuffer(data.length);
    new Uint8Array(bytes).set(data);
    ref = scanCounts ? { id: nextId++, bytes, scanCounts } : { id: nextId++, bytes };
    if (fleetCounts) ref.fleetCounts = fleetCounts;
    encoded.set(policy, ref);
  }
  return ref;
}

/** Worker side: the policies seen last, newest last (a reload makes a new one; a batch of the old may still come). */
const decoded = new Map<number, JudgePolicy>();
const KEEP = 4;

export function policyOf(ref: PolicyRef): JudgePolicy {
  let policy = decoded.get(ref.id);
  if (!policy) {
    policy = deserialize(new Uint8Array(ref.bytes)) as JudgePolicy;
    if (ref.scanCounts) policy.scanCounts = ref.scanCounts;
    if (ref.fleetCounts && policy.fleet) policy.fleet.counts = ref.fleetCounts;
    decoded.set(ref.id, policy);
    if (decoded.size > KEEP) decoded.delete(decoded.keys().next().value as number);
  }
  return policy;
}
