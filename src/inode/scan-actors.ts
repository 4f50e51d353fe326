// The async work an inode machine invokes, as XState actors: reading the tags, and running the missing scanners.
import { fromCallback, fromPromise } from 'xstate';
import type { Answer } from '../policy/answer.js';
import type { InodeServices, ScanResult } from './services.js';

export const readTags = fromPromise<Map<string, Answer>, { services: InodeServices; fd: number }>(({ input }) =>
  input.services.readAnswers(input.fd),
);

export type ScannedEvent = { type: 'SCANNED'; result: ScanResult; epoch: number } | { type: 'SCAN_BROKEN'; name: string; error: string; epoch: number };

/** Runs every named scanner at once; each result comes back as its own event, so the stack can decide early. */
export const runScanners = fromCallback<{ type: 'noop' }, { services: InodeServices; fd: number; names: string[]; epoch: number; background: boolean; uid?: number }>(({ input, sendBack }) => {
  // A plain flag: an AbortController per file costs an EventTarget, and a DOMException at every abort.
  const stop = { aborted: false };
  for (const name of input.names) {
    input.services.scan(input.fd, name, stop, input.background, input.uid).then(
      (result) => {
        if (!stop.aborted) sendBack({ type: 'SCANNED', result, epoch: input.epoch } satisfies ScannedEvent);
      },
      (err: Error) => {
        if (!stop.aborted) sendBack({ type: 'SCAN_BROKEN', name, error: err.message, epoch: input.epoch } satisfies ScannedEvent);
      },
    );
  }
  // Leaving the scanning state (a change, a verdict) stops listening. A scan already running finishes in its
  // worker, and its tag write fails the conditional bless if the file changed: nothing stale lands.
  return () => {
    stop.aborted = true;
  };
});
