// The daemon's counters in Prometheus' exposition format, through prom-client. Every value is read from
// DaemonStats at scrape time (collect callbacks): nothing on the hot path knows that metrics exist, and a scrape
// costs one stats() call. Names follow Prometheus conventions: a unit suffix, `_total` for counters, labels for
// kinds. The answer-latency histogram is the native gate's own HDR histogram, re-bucketed at powers of two.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { bucketFloorUs } from '../gate/latency.js';
import type { DaemonStats } from '../daemon/stats.js';
import { SCAN_BUCKETS_S, type ScanHistogram } from './scan-durations.js';

type Stats = () => DaemonStats;

/** Registry for one daemon; `stats` is called at every scrape. */
export function daemonRegistry(stats: Stats): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register, prefix: 'blessd_' });
  // One stats() per scrape, shared by every collector of that scrape.
  let cached: { at: number; value: DaemonStats } | undefined;
  const now = (): DaemonStats => {
    const t = Date.now();
    if (!cached || t - cached.at > 100) cached = { at: t, value: stats() };
    return cached.value;
  };

  const counter = (name: string, help: string, labelNames: string[], values: (s: DaemonStats) => [Record<string, string>, number][]) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [register],
      collect() {
        this.reset();
        for (const [labels, v] of values(now())) if (v > 0) this.inc(labels, v);
      },
    });
  const gauge = (name: string, help: string, labelNames: string[], values: (s: DaemonStats) => [Record<string, string>, number][]) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [register],
      collect() {
        this.reset();
        for (const [labels, v] of values(now())) this.set(labels, v);
      },
    });

  counter('blessd_permission_events_total', 'Events read from the kernel, by kind.', ['kind'], (s) => [
    [{ kind: 'open_perm' }, s.gate.events['openPerm'] ?? 0],
    [{ kind: 'exec_perm' }, s.gate.events['execPerm'] ?? 0],
    [{ kind: 'pre_access' }, s.gate.events['preAccess'] ?? 0],
    [{ kind: 'open_notice' }, s.gate.events['openNotice'] ?? 0],
    [{ kind: 'change' }, s.gate.events['change'] ?? 0],
  ]);
  counter('blessd_answers_total', 'Permission answers, by who gave them: a verdict from JS, the native fast path, the deadline, the overload cap, shutdown.', ['by', 'reason'], (s) => [
    [{ by: 'verdict', reason: 'js' }, s.gate.answeredByJs],
    [{ by: 'fastpath', reason: 'own' }, s.gate.fastOwn],
    [{ by: 'fastpath', reason: 'exempt' }, s.gate.fastExempt],
    [{ by: 'fastpath', reason: 'allowed' }, s.gate.fastAllowed],
    [{ by: 'fastpath', reason: 'denied' }, s.gate.fastDenied],
    [{ by: 'fastpath', reason: 'writer' }, s.gate.fastWriter],
    [{ by: 'deadline', reason: 'deadline' }, s.gate.answeredByDeadline],
    [{ by: 'overload', reason: 'max_pending' }, s.gate.answeredOverload],
    [{ by: 'shutdown', reason: 'close' }, s.gate.answeredAtClose],
  ]);
  counter('blessd_forwarded_events_total', 'Permission events the native thread could not answer alone and handed to JavaScript.', [], (s) => [[{}, s.gate.forwarded]]);
  counter('blessd_late_answers_total', 'JavaScript answers that came after the deadline or the cap had answered.', [], (s) => [[{}, s.gate.lateAnswers]]);
  counter('blessd_queue_overflows_total', 'Kernel queue overflows (every cached verdict was forgotten).', [], (s) => [[{}, s.gate.overflows]]);
  counter('blessd_change_events_coalesced_total', 'Modify records folded into an earlier dirty transition.', [], (s) => [[{}, s.gate.coalesced]]);
  counter('blessd_ignore_marks_total', 'Evictable ignore marks added and removed.', ['op'], (s) => [
    [{ op: 'added' }, s.gate.ignoreMarksAdded],
    [{ op: 'removed' }, s.gate.ignoreMarksRemoved],
  ]);
  gauge('blessd_pending_permission_events', 'Permission events waiting for an answer now.', [], (s) => [[{}, s.gate.pendingNow]]);
  gauge('blessd_held_fds', 'Event descriptors the gate holds now (waiting events and settled records being logged).', [], (s) => [[{}, s.gate.heldFds]]);
  counter('blessd_settle_walk_files_total', 'Regular files the settle walk looked at, by what became of them.', ['outcome'], (s) => {
    const w = s.gate.settleWalk;
    return [
      [{ outcome: 'allowed' }, w.settledAllowed],
      [{ outcome: 'denied' }, w.settledDenied],
      [{ outcome: 'unsettled' }, w.unsettled],
      [{ outcome: 'known' }, w.known],
      [{ outcome: 'changed' }, w.changed],
    ];
  });
  counter('blessd_settle_walk_skipped_total', 'Entries the settle walk did not enter: symlinks, mount points, devices, fifos.', [], (s) => [[{}, s.gate.settleWalk.skipped]]);
  counter('blessd_settle_walks_completed_total', 'Settle walks that went through every guard.', [], (s) => [[{}, s.gate.settleWalk.completed]]);
  gauge('blessd_verdict_table_entries', 'Inodes in the native verdict table.', [], (s) => [[{}, s.gate.verdictTableSize]]);
  counter('blessd_scans_total', 'Scans run, by scanner.', ['scanner'], (s) => Object.entries(s.scans).map(([scanner, n]) => [{ scanner }, n]));
  counter('blessd_verdicts_total', 'Verdicts reached, by verdict.', ['verdict'], (s) => [
    [{ verdict: 'allow' }, s.verdicts.allow],
    [{ verdict: 'deny' }, s.verdicts.deny],
  ]);
  gauge('blessd_inode_machines', 'Live inode machines, by state.', ['state'], (s) => Object.entries(s.machineStates).map(([state, n]) => [{ state }, n]));
  counter('blessd_errors_total', 'Events whose handling failed (each was answered on the spot).', [], (s) => [[{}, s.errors]]);
  gauge('blessd_guards', 'Guarded paths, by kind and wait mode.', ['path', 'kind', 'mode'], (s) => s.guards.map((g) => [{ path: g.path, kind: g.kind, mode: g.mode }, 1]));
  register.registerMetric(new LatencyHistogram(() => now().gate.latencyUs) as never);
  register.registerMetric(new ScanDurationHistogram(() => now().scanDurations) as never);
  return register;
}

/**
 * The gate's HDR histogram (µs, 8 sub-buckets per power of two) as a Prometheus histogram with one bucket per
 * power of two. prom-client's Histogram only counts its own observe() calls; this object speaks the same
 * get() contract its Registry formats.
 */
class LatencyHistogram {
  readonly name = 'blessd_answer_latency_seconds';
  readonly help = 'Time from the kernel event to the JavaScript answer, for forwarded permission events.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(private readonly counts: () => readonly number[]) {}

  get() {
    const counts = this.counts();
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    let acc = 0;
    let sumUs = 0;
    let edge = 8; // bucket i holds [floor(i), floor(i+1)); emit cumulative counts at every power of two
    for (let i = 0; i < counts.length; i++) {
      const upper = bucketFloorUs(i + 1);
      while (upper > edge) {
        values.push({ value: acc, labels: { le: edge / 1e6 }, metricName: `${this.name}_bucket` });
        edge *= 2;
      }
      acc += counts[i]!;
      sumUs += counts[i]! * (bucketFloorUs(i) + upper) / 2; // midpoint: the histogram keeps no exact sum
    }
    values.push({ value: acc, labels: { le: '+Inf' }, metricName: `${this.name}_bucket` });
    values.push({ value: sumUs / 1e6, labels: {}, metricName: `${this.name}_sum` });
    values.push({ value: acc, labels: {}, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset() {}
}

/**
 * Scan durations per scanner (src/metrics/scan-durations.ts), as a Prometheus histogram with a `scanner` label:
 * cumulative buckets at SCAN_BUCKETS_S, the exact sum and the count. Same get() contract as LatencyHistogram.
 */
class ScanDurationHistogram {
  readonly name = 'blessd_scan_duration_seconds';
  readonly help = 'How long scans took, per scanner: from the scan getting its pool slot to its answer, tag written (answers only; failures are not durations).';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(private readonly histograms: () => Record<string, ScanHistogram>) {}

  get() {
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    for (const [scanner, h] of Object.entries(this.histograms())) {
      let acc = 0;
      SCAN_BUCKETS_S.forEach((le, i) => {
        acc += h.counts[i]!;
        values.push({ value: acc, labels: { scanner, le }, metricName: `${this.name}_bucket` });
      });
      values.push({ value: h.count, labels: { scanner, le: '+Inf' }, metricName: `${this.name}_bucket` });
      values.push({ value: h.sumSeconds, labels: { scanner }, metricName: `${this.name}_sum` });
      values.push({ value: h.count, labels: { scanner }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset() {}
}
