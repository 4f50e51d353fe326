// In a worker, for a scan task of the main thread's scan path (src/daemon/scan-service.ts: written files, background
// scans): the store's answer instead of the scan, or the scan's content answer shared. The lease and the tag write
// stay on the main thread, as for every scan task; the lookup and the publish happen here (share.ts).
import type { ScanResult, WorkerFailure } from '../pool/tasks.js';
import { FleetFile, type FleetPolicy } from './share.js';

export async function scanShared(
  name: string,
  file: { fd: number; size: number },
  fleet: { policy: FleetPolicy; generation: string },
  actorGeneration: string,
  scan: () => Promise<ScanResult | WorkerFailure>,
): Promise<ScanResult | WorkerFailure> {
  const f = new FleetFile(fleet.policy, file.fd, file.size, new Map([[name, fleet.generation]]));
  const shared = await f.shared(name);
  if (shared) return { answer: shared.answer, ...(shared.reason !== undefined && { reason: shared.reason }), generation: actorGeneration, ms: 0, shared: true };
  const r = await scan();
  if (!('error' in r)) f.publish(name, r.reason === undefined ? { answer: r.answer } : { answer: r.answer, reason: r.reason });
  return r;
}
