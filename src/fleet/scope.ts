// Which scanners of a stack the fleet store serves — decided once per stack on the main thread, from the entries
// alone (no I/O), for both scan paths (the worker batch: JudgePolicy.fleet.served; the scan path: scan-service).
//
// A scanner is looked up and published only if a store hit can save something and its answer is about the content:
// - The built-in `signature` scanner is one native pass in this process that reads the file as fast as the digest
//   a lookup needs (bench/fleet: with it alone, the store doubled the reads of a cold file, a hit cost more CPU than
//   the scan, and the fleet's wall time doubled). It is never looked up; where the file also needs a served scanner
//   its pass gives the digest instead (share.ts).
// - `allowlist`, `expected` and `integrity` answer about the path, an SELinux label or this host's baseline, not
//   (only) the bytes: such an answer under a content key would let the same bytes pass on another host at a path no
//   list names. They are cheap in-process checks as well.
// - `default` is a constant; remote scanners are served on the control socket, not by the pool.
// Everything else is served: clamd, yara, exec (the farm included), and actor modules of your own.
import type { StackEntry } from '../config/types.js';

const NOT_SERVED: Record<string, string> = {
  signature: 'a cheap in-process signature pass: it reads the file as fast as the digest a lookup needs, so a hit saves nothing',
  allowlist: 'answers about the path or SELinux label, not the content',
  expected: 'answers about the path or a list of digests: a cheap in-process check',
  integrity: "answers about this host's baseline, not the content alone",
  default: 'a constant answer',
};

/** Why the store does not serve this pool scanner (a built-in actor name, or a module's absolute path), or undefined. */
export function notServedBecause(actor: string): string | undefined {
  return actor.startsWith('/') ? undefined : NOT_SERVED[actor];
}

export interface FleetScope {
  /** Scanner names the store serves. */
  served: string[];
  /** The others among the stack's entries, with the reason (for the log line at start and reload). */
  skipped: { name: string; why: string }[];
}

export function fleetScope(stack: readonly StackEntry[], remoteActor: string): FleetScope {
  const scope: FleetScope = { served: [], skipped: [] };
  for (const e of stack) {
    const why = e.actor === remoteActor ? 'an out-of-process scanner on the control socket' : e.builtin ? NOT_SERVED[e.actor] : undefined;
    if (why === undefined) scope.served.push(e.name);
    else scope.skipped.push({ name: e.name, why });
  }
  return scope;
}

/** A cheap content pass of the built-ins (the signature scanner): its scan can give the file's digest. */
export function isPassEntry(e: Pick<StackEntry, 'actor' | 'builtin'>): boolean {
  return e.builtin && e.actor === 'signature';
}
