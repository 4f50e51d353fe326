// In a worker, for a scan task of the main thread's scan path (src/daemon/scan-service.ts: written files, background
// scans): the store's answer instead of the scan, or the scan's content answer shared. The lease and the tag write
// stay on the main thread, as for every scan task; the lookup and the publish happen here (share.ts). The digest
// is the one another scanner's content pass gave the file (src/daemon/digest-round.ts) if it still names the file,
// else one read here; either way it goes back with the result, for the content stamp (nothing reads it again).
import type { FileDigest, ScanResult, WorkerFailure } from '../pool/tasks.js';
import { stillNames } from './digest.js';
import { FleetFile, type FleetPolicy } from './share.js';

export async function scanShared(
  name: string,
  file: { fd: number; size: number },
  fleet: { policy: FleetPolicy; generation: string; digest?: FileDigest; ownCtimeNs?: bigint },
  actorGeneration: string,
  scan: () => Promise<ScanResult | WorkerFailure>,
): Promise<ScanResult | WorkerFailure> {
  const given = fleet.digest === undefined ? undefined : stillNames(file.fd, fleet.digest, fleet.ownCtimeNs) ? fleet.digest : null;
  const f = new FleetFile(fleet.policy, file.fd, file.size, new Map([[name, fleet.generation]]), undefined, given);
  if (fleet.ownCtimeNs !== undefined) f.wroteTag(fleet.ownCtimeNs);
  const shared = await f.shared(name);
  const digest = f.taken();
  if (shared) {
    return { answer: shared.answer, ...(shared.reason !== undefined && { reason: shared.reason }), generation: actorGeneration, ms: 0, shared: true, ...(digest && { digest }) };
  }
  const r = await scan();
  if ('error' in r) return r;
  f.publish(name, r.reason === undefined ? { answer: r.answer } : { answer: r.answer, reason: r.reason });
  if (digest && !r.digest) r.digest = digest;
  return r;
}
