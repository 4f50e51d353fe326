// The key of a worker's actor slot: one per (module, scanner name, options). The pool names by it the slots a stack
// keeps at a reload (scan-pool.ts retainOnly), the workers their cache (load-actor.ts).
import type { WorkerEntry } from './tasks.js';

export function slotKey(entry: Pick<WorkerEntry, 'actor' | 'name' | 'options'>): string {
  return `${entry.actor}\0${entry.name}\0${JSON.stringify(entry.options ?? {})}`;
}
