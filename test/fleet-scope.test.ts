// Which scanners the fleet store serves (src/fleet/scope.ts), and the judge policy the workers get with it
// (src/fleet/policy.ts withFleet): none served, no fleet in the policy at all (a worker then never connects).
import test from 'ava';
import type { StackEntry } from '../src/config/types.js';
import { withFleet, type Fleet } from '../src/fleet/policy.js';
import { FleetCounters } from '../src/fleet/counters.js';
import { fleetScope } from '../src/fleet/scope.js';
import type { JudgePolicy } from '../src/pool/tasks.js';

const entry = (name: string, actor: string, builtin = !actor.startsWith('/')): StackEntry =>
  ({ name, actor, builtin, control: 'gate', options: {}, maxSize: 1 << 30, onError: 'deny', onTimeout: 'deny', onTooLarge: 'deny', baseDir: '/', origin: 'test' }) as unknown as StackEntry;

const counters = new FleetCounters();
const fleet: Fleet = { policy: { url: 'redis://127.0.0.1:1', key: new Uint8Array(32), timeoutMs: 100, ttlS: 60, origin: 't', counts: counters.shared }, counters };

function policyOf(stack: StackEntry[]): JudgePolicy {
  return {
    rules: stack.map((e) => ({ name: e.name, control: 'gate' })),
    generations: {},
    scanners: stack.filter((e) => e.actor !== 'default').map((e) => ({ name: e.name, actor: e.actor, options: {}, onError: 'deny', onTimeout: 'deny', onTooLarge: 'deny' })),
    tags: { namespace: 'user', key: new Uint8Array(32), leaseMs: 1000, stampMode: 'ctime' },
    timeoutMs: 1000,
  } as unknown as JudgePolicy;
}

test('the signature pass, path-based built-ins, constants and remote scanners are not served; engines and modules are', (t) => {
  const scope = fleetScope([entry('signature', 'signature'), entry('allow', 'allowlist'), entry('exp', 'expected'), entry('tripwire', 'integrity'), entry('yara', 'yara'), entry('clamd', 'clamd'), entry('mine', '/opt/actors/mine.js'), entry('far', 'remote'), entry('default', 'default')], 'remote');
  t.deepEqual(scope.served, ['yara', 'clamd', 'mine']);
  t.deepEqual(scope.skipped.map((s) => s.name), ['signature', 'allow', 'exp', 'tripwire', 'far', 'default']);
  t.regex(scope.skipped[0]!.why, /cheap in-process signature pass/);
  t.regex(scope.skipped[1]!.why, /path/);
});

test('withFleet: a signature-only stack gets no fleet; with yara, the fleet names yara alone as served', (t) => {
  const sigOnly = policyOf([entry('signature', 'signature'), entry('default', 'default')]);
  t.is(withFleet(sigOnly, fleet).fleet, undefined);
  const mixed = policyOf([entry('signature', 'signature'), entry('allow', 'allowlist'), entry('yara', 'yara'), entry('default', 'default')]);
  const p = withFleet(mixed, fleet);
  t.deepEqual(p.fleet?.served, ['yara']);
  t.is(withFleet(mixed, fleet), p, 'the same object for the same policy (policy-wire sends it once)');
  t.is(withFleet(mixed, null), mixed);
});
