// The fleet store's state in the log (src/fleet/monitor.ts), from the workers' shared counters: a loss is said once,
// also when the store died within the second that still had answers (a burst that ends in failures), and nothing
// flip-flops while part of a store answers. A real pino logger writing into memory; the counters are the real ones.
import test from 'ava';
import { pino } from 'pino';
import { FleetCounters } from '../src/fleet/counters.js';
import { FleetMonitor } from '../src/fleet/monitor.js';

function monitor() {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l).msg as string) });
  const counters = new FleetCounters();
  // Checked by hand below: the timer never fires during a test this short (an hour), and is stopped at the end.
  const m = new FleetMonitor(counters, log, 'redis://store', 3_600_000);
  return { lines, counters, m };
}

const down = (lines: string[]) => lines.filter((l) => l.startsWith('fleet store unavailable')).length;
const back = (lines: string[]) => lines.filter((l) => l === 'fleet store answering again').length;

test('a second of answers then failures, then no lookups: the loss is said once, when the lookups stop', (t) => {
  const { lines, counters, m } = monitor();
  t.teardown(() => m.stop());
  counters.add('misses');
  counters.add('unavailable', 8);
  m.check();
  t.is(down(lines), 0, 'which came last is not known yet');
  m.check();
  t.is(down(lines), 1, 'no answer since: the burst ended in failures');
  counters.add('unavailable', 3);
  m.check();
  t.is(down(lines), 1, 'said once');
  counters.add('hits');
  m.check();
  t.is(back(lines), 1);
});

test('failures only: said at once; part of a store answering (answers and failures every second): not said', (t) => {
  const { lines, counters, m } = monitor();
  t.teardown(() => m.stop());
  counters.add('unavailable', 2);
  m.check();
  t.is(down(lines), 1);
  counters.add('hits');
  m.check();
  t.is(back(lines), 1);
  for (let i = 0; i < 5; i++) {
    counters.add('hits');
    counters.add('unavailable');
    m.check();
  }
  t.is(down(lines), 1, 'no line per second while lookups keep being answered');
  t.is(back(lines), 1);
});
