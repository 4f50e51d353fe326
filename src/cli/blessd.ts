#!/usr/bin/env node
// blessd: `run` guards what config.yaml says, in the foreground; `check` validates a config and explains it.
// Signals: SIGTERM/SIGINT answer everything pending, remove every mark and the control socket, and exit 0; SIGHUP
// (or `blessctl reload`) reloads the config (a bad one is reported and the old one kept).
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/index.js';
import type { Config } from '../config/types.js';
import { explainStack } from '../policy/stack.js';
import { quietOnClosedPipe } from './pipe.js';
import { isBlessdError } from '../errors.js';
import { checkConfig, checkGuards } from './check.js';
import { DEFAULT_GUARDS_FILE } from '../daemon/published-guards.js';

const USAGE = `Usage:
  blessd run --config FILE     guard what FILE says, in the foreground (root)
  blessd check --config FILE   validate FILE and explain the policy stack`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    process.stderr.write(`blessd: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (cmd === undefined || (cmd !== 'run' && cmd !== 'check')) {
    process.stderr.write(USAGE + '\n');
    return 2;
  }
  const file = values.config ?? 'config.yaml';
  let config: Config;
  try {
    config = loadConfig(file);
  } catch (err) {
    process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `blessd: ${(err as Error).message}\n`);
    return 1;
  }
  if (cmd === 'check') return check(config);
  return run(config, file);
}

async function check(config: Config): Promise<number> {
  const report = await checkConfig(config);
  for (const w of report.warnings) process.stdout.write(`warning: ${w}\n`);
  if (report.problems.length > 0) {
    for (const p of report.problems) process.stderr.write(`${p}\n`);
    process.stderr.write(`${config.file}: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'}: blessd run would not start\n`);
    return 1;
  }
  process.stdout.write(`${config.file}: ok\n\nGuards:\n`);
  for (const g of config.guards) process.stdout.write(`  ${g.path} (${g.kind}, wait at ${g.wait})\n`);
  process.stdout.write(`\n${explainStack(report.stack)}\n`);
  return 0;
}

async function run(config: Config, file: string): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('blessd run: needs root (fanotify permission events, trusted.* tags)\n');
    return 1;
  }
  // What `check` finds on the guards, before anything is marked: the same one line per problem.
  const problems = checkGuards(config);
  if (problems.length > 0) {
    for (const p of problems) process.stderr.write(`${p}\n`);
    return 1;
  }
  // Loaded here, not at the top: `--help` and `check` need neither root nor the native addon.
  const [{ Daemon }, { makeLogger }, { NotifyServer }, { SystemdNotifier }] = await Promise.all([
    import('../daemon/daemon.js'),
    import('../daemon/logger.js'),
    import('../notify/server.js'),
    import('../daemon/systemd.js'),
  ]);
  const log = makeLogger(config.log.level);
  let daemon: import('../daemon/daemon.js').Daemon;
  try {
    daemon = await Daemon.start(config, log, { guardsFile: process.env['BLESSD_GUARDS_FILE'] ?? DEFAULT_GUARDS_FILE });
    // After the start, so that the threads it made keep their own names: another daemon on this kernel tells ours
    // from other root processes by it (docs/sharedfs.md).
    const [{ native }, { DAEMON_NAME }] = await Promise.all([import('../gate/addon.js'), import('../tags/lease-reader.js')]);
    native.setThreadName(DAEMON_NAME);
  } catch (err) {
    startFailed(log, err, config.file);
    return 1;
  }
  const sd = new SystemdNotifier(log);
  const summary = () => {
    const guards = daemon.stats().guards.map((g) => `${g.path} (${g.kind}, ${g.mode})`);
    const stack = daemon.control().stack().map((e) => `${e.name}:${e.control}`);
    return `guarding ${guards.join(', ')}; stack ${stack.join(' ')}`;
  };
  const reload = async () => {
    const next = loadConfig(file); // throws ConfigError naming file:line: the old configuration stays
    sd.reloading();
    try {
      return await daemon.reload(next);
    } finally {
      sd.reloaded(summary());
    }
  };
  let server: import('../notify/server.js').NotifyServer;
  let metrics: import('../metrics/server.js').MetricsServer | undefined;
  let farm: import('../farm/scanner-listener.js').FarmListener | undefined;
  try {
    server = await NotifyServer.start({ control: daemon.control(), notices: daemon, socket: config.socket, log, reload });
    const heard = server;
    daemon.verdictsHeardWhen(() => heard.hearsVerdicts());
    if (config.metrics.listen) {
      const [{ MetricsServer }, { daemonRegistry }] = await Promise.all([import('../metrics/server.js'), import('../metrics/registry.js')]);
      metrics = await MetricsServer.start(config.metrics.listen, daemonRegistry(() => daemon.stats()), log);
    }
    if (config.farm.listen) {
      const { FarmListener } = await import('../farm/scanner-listener.js');
      farm = await FarmListener.start({ farm: config.farm, control: daemon.control(), log });
    }
  } catch (err) {
    startFailed(log, err, config.file);
    await daemon.stop();
    return 1;
  }
  log.info({ config: config.file, socket: config.socket.path }, 'blessd ready');
  process.stdout.write('ready\n');
  sd.ready(summary());

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping: answering everything pending');
      sd.stopping();
      // The daemon first: every waiting access is answered before anything else; then the socket goes.
      daemon
        .stop()
        .finally(() => Promise.all([server.close(), metrics?.close(), farm?.close()]))
        .then(
          () => resolve(0),
          (err: unknown) => {
            log.error({ err }, 'stop failed');
            resolve(1);
          },
        );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      reload().then(
        () => log.info('reload asked by SIGHUP: done'),
        (err) => log.error({ err: (err as Error).message }, 'reload refused: the old configuration stays'),
      );
    });
  });
}

/** A start-up failure is one line naming the place (no stack trace): on stderr, and in the log for journald. */
function startFailed(log: import('../daemon/logger.js').Logger, err: unknown, file: string): void {
  let message = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, '; ');
  // Name the place: the config file, unless the message already starts with a place in it (file:line:col).
  if (!message.startsWith(file)) message = `${file}: ${message}`;
  log.fatal({ code: (err as { code?: string }).code }, `cannot start: ${message}`);
  // Not one of ours (no stable code): a bug. Its stack goes to the debug log for the report, not to the admin.
  if (!isBlessdError(err)) log.debug({ err }, 'cannot start: the stack of an unexpected error');
  process.stderr.write(`blessd run: cannot start: ${message}\n`);
}

quietOnClosedPipe();

process.exitCode = await main(process.argv.slice(2));
