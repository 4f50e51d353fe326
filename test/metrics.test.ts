// Prometheus metrics: scraped for real over TCP (loopback) and over a unix socket from `blessd run`.
import test from 'ava';
import { request } from 'node:http';
import { chmodSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '../src/config/index.js';
import { EICAR } from '../src/daemon/demo.js';
import { makeLogger } from '../src/daemon/logger.js';
import { daemonRegistry } from '../src/metrics/registry.js';
import { MetricsServer } from '../src/metrics/server.js';
import { tempDir } from './helpers/actor-files.js';
import { runChild } from './helpers/child.js';
import { REPO, withDaemon } from './helpers/daemon-harness.js';
import { lineChild } from './helpers/notify-harness.js';
import { isRoot, makeScratch } from './helpers/scratch.js';
import { within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const BLESSD = join(REPO, 'dist/src/cli/blessd.js');

function get(opts: { port?: number; socketPath?: string; path?: string }): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: opts.port, socketPath: opts.socketPath, path: opts.path ?? '/metrics', timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The value of one sample line, e.g. value(body, 'blessd_verdicts_total{verdict="deny"}'). */
function value(body: string, sample: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(sample + ' '));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

t0('a scrape over loopback TCP shows the verdicts, scans, events, answers and latency of real accesses', async (t) => {
  const h = await withDaemon(t, 'ext4', {
    prepare: async (d) => {
      await writeFile(join(d, 'eicar.com'), EICAR);
      for (let i = 0; i < 5; i++) await writeFile(join(d, `c${i}.txt`), `clean ${i}\n`);
    },
  });
  const server = await MetricsServer.start({ kind: 'tcp', host: '127.0.0.1', port: 0 }, daemonRegistry(() => h.daemon.stats()), makeLogger('error'));
  t.teardown(() => server.close());
  t.regex((await runChild('cat', [join(h.dir, 'eicar.com')])).stderr, /Operation not permitted/);
  for (let i = 0; i < 5; i++) t.is((await runChild('cat', [join(h.dir, `c${i}.txt`)])).stdout, `clean ${i}\n`);

  const r = await get({ port: server.port });
  t.is(r.status, 200);
  t.regex(r.type, /^text\/plain; version=0\.0\.4/);
  t.is(value(r.body, 'blessd_verdicts_total{verdict="deny"}'), 1);
  t.is(value(r.body, 'blessd_verdicts_total{verdict="allow"}'), h.daemon.stats().verdicts.allow);
  t.true(h.daemon.stats().verdicts.allow >= 5);
  t.is(value(r.body, 'blessd_scans_total{scanner="signature"}'), 6);
  t.true((value(r.body, 'blessd_permission_events_total{kind="pre_access"}') ?? 0) >= 6);
  t.true((value(r.body, 'blessd_answers_total{by="verdict",reason="js"}') ?? 0) >= 6);
  t.regex(r.body, /^# TYPE blessd_answer_latency_seconds histogram$/m);
  const count = value(r.body, 'blessd_answer_latency_seconds_count');
  t.true((count ?? 0) >= 6);
  t.is(value(r.body, 'blessd_answer_latency_seconds_bucket{le="+Inf"}'), count);
  // Buckets are cumulative: never decreasing.
  const buckets = r.body.split('\n').filter((l) => l.startsWith('blessd_answer_latency_seconds_bucket')).map((l) => Number(l.split(' ')[1]));
  t.deepEqual(buckets, [...buckets].sort((a, b) => a - b));
  t.regex(r.body, new RegExp(`^blessd_guards\\{path="${h.dir}",kind="filesystem",mode="(read|open)"\\} 1$`, 'm'));
  t.regex(r.body, /^blessd_process_resident_memory_bytes \d+/m);
  t.is((await get({ port: server.port, path: '/' })).status, 404);
});

t0('blessd_scan_duration_seconds has one histogram per scanner, with the time its scans really took', async (t) => {
  // A scanner program that takes 300 ms per file (outside the guard: the daemon runs it), beside the built-in engine.
  const bin = tempDir('blessd-metrics-');
  t.teardown(() => bin.cleanup());
  const slow = bin.write('slow.sh', '#!/bin/sh\ncat >/dev/null\nsleep 0.3\nexit 0\n');
  chmodSync(slow, 0o755);
  const h = await withDaemon(t, 'ext4', {
    stack: `  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: exec
    name: slow
    options: { program: ${slow} }
  - actor: default
    options: { answer: allow }`,
    prepare: async (d) => {
      for (let i = 0; i < 3; i++) await writeFile(join(d, `f${i}.txt`), `file ${i}\n`);
    },
  });
  const server = await MetricsServer.start({ kind: 'tcp', host: '127.0.0.1', port: 0 }, daemonRegistry(() => h.daemon.stats()), makeLogger('error'));
  t.teardown(() => server.close());
  for (let i = 0; i < 3; i++) t.is((await runChild('cat', [join(h.dir, `f${i}.txt`)])).stdout, `file ${i}\n`);

  const { body } = await get({ port: server.port });
  t.regex(body, /^# TYPE blessd_scan_duration_seconds histogram$/m);
  for (const scanner of ['signature', 'slow']) {
    t.is(value(body, `blessd_scan_duration_seconds_count{scanner="${scanner}"}`), 3, scanner);
    t.is(value(body, `blessd_scan_duration_seconds_bucket{scanner="${scanner}",le="+Inf"}`), 3, scanner);
    const buckets = body.split('\n').filter((l) => l.startsWith(`blessd_scan_duration_seconds_bucket{scanner="${scanner}",`)).map((l) => Number(l.split(' ')[1]));
    t.deepEqual(buckets, [...buckets].sort((a, b) => a - b), `${scanner}: cumulative buckets`);
  }
  // Each slow scan took its 300 ms: none falls at or below 0.25 s, and the sum holds all three.
  t.is(value(body, 'blessd_scan_duration_seconds_bucket{scanner="slow",le="0.25"}'), 0);
  t.true(value(body, 'blessd_scan_duration_seconds_sum{scanner="slow"}')! >= 0.9);
  // The built-in engine on a 7-byte file is much faster than that.
  t.true(value(body, 'blessd_scan_duration_seconds_sum{scanner="signature"}')! < value(body, 'blessd_scan_duration_seconds_sum{scanner="slow"}')!);
  t.true(value(body, 'blessd_scan_duration_seconds_bucket{scanner="signature",le="0.25"}')! >= 1);
});

test('metrics.listen takes loopback host:port or a unix socket, and names the line of anything else', (t) => {
  const base = `stateDir: /tmp/x\nguards: [{ path: /tmp }]\nstack:\n  - actor: default\n    options: { answer: allow }\n`;
  t.deepEqual(parseConfig(base, 'c.yaml').metrics, { listen: null });
  t.deepEqual(parseConfig(base + 'metrics: { listen: "127.0.0.1:9464" }\n', 'c.yaml').metrics.listen, { kind: 'tcp', host: '127.0.0.1', port: 9464 });
  t.deepEqual(parseConfig(base + 'metrics: { listen: "[::1]:9464" }\n', 'c.yaml').metrics.listen, { kind: 'tcp', host: '::1', port: 9464 });
  t.deepEqual(parseConfig(base + 'metrics: { listen: /run/blessd/m.sock }\n', 'c.yaml').metrics.listen, { kind: 'unix', path: '/run/blessd/m.sock' });
  const far = t.throws(() => parseConfig(base + 'metrics: { listen: "0.0.0.0:9464" }\n', 'c.yaml'));
  t.regex(far!.message, /c\.yaml:6:\d+: metrics\.listen: host must be a loopback address/);
  const junk = t.throws(() => parseConfig(base + 'metrics:\n  listen: nine\n', 'c.yaml'));
  t.regex(junk!.message, /c\.yaml:7:\d+: metrics\.listen: must be HOST:PORT/);
  t.throws(() => parseConfig(base + 'metrics: { listen: "127.0.0.1:9464", lisen: 1 }\n', 'c.yaml'), { message: /metrics\.lisen/ });
});

t0('blessd run serves /metrics on a unix socket and removes it at stop', async (t) => {
  const scratch = await makeScratch('tmpfs');
  t.teardown(() => scratch.cleanup());
  const sock = join(scratch.base, 'metrics.sock');
  const cfg = join(scratch.base, 'config.yaml');
  await writeFile(
    cfg,
    `stateDir: ${join(scratch.base, 'state')}
guards: [{ path: ${scratch.dir} }]
socket: { path: ${join(scratch.base, 'ctl.sock')} }
metrics: { listen: ${sock} }
stack:
  - actor: default
    options: { answer: allow }
`,
  );
  const d = lineChild(t, process.execPath, [BLESSD, 'run', '--config', cfg]);
  await d.waitFor((l) => l === 'ready', 20_000, 'ready');
  const r = await get({ socketPath: sock });
  t.is(r.status, 200);
  t.regex(r.body, /^blessd_pending_permission_events 0$/m);
  const exited = new Promise<number | null>((resolve) => d.child.on('exit', (c) => resolve(c)));
  d.child.kill('SIGTERM');
  t.is(await within('blessd to exit after SIGTERM', exited, 15_000), 0, d.stderr());
  await t.throwsAsync(get({ socketPath: sock }), { code: 'ENOENT' });
});
