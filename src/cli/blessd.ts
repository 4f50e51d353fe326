#!/usr/bin/env node
// blessd: `run` guards what config.yaml says, in the foreground; `check` validates a config and explains it.
// Signals: SIGTERM/SIGINT answer everything pending, remove every mark and the control socket, and exit 0; SIGHUP
// (or `blessctl reload`) reloads the config (a bad one is reported and the old one kept).
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/index.js';
import type { Config } from '../config/types.js';
import { effectiveStack } from '../policy/must-pass.js';
import { explainStack } from '../policy/stack.js';
import { quietOnClosedPipe } from './pipe.js';
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
  let effective;
  try {
    effective = await effectiveStack(config);
  } catch (err) {
    // Known failures (the must-pass directory went away since load...) are one line, not a stack trace.
    if (!isKnownError(err)) throw err;
    process.stderr.write(`blessd: ${config.file}: ${(err as Error).message}\n`);
    return 1;
  }
  const { stack, warnings } = effective;
  for (const w of warnings) process.stdout.write(`warning: ${(w as { message?: string }).message ?? String(w)}\n`);
  process.stdout.write(`${config.file}: ok\n\nGuards:\n`);
  for (const g of config.guards) process.stdout.write(`  ${g.path} (${g.kind}, wait at ${g.wait})\n`);
  process.stdout.write(`\n${explainStack(stack)}\n`);
  return 0;
}

async function run(config: Config, file: string): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('blessd run: needs root (fanotify permission events, trusted.* tags)\n');
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
  } catch (err) {
    // A known failure is its message (it names the path); anything else keeps its stack for the bug report.
    if (isKnownError(err)) process.stderr.write(`blessd: ${config.file}: cannot start: ${(err as Error).message}\n`);
    else log.fatal({ err }, `cannot start: ${(err as Error).message}`);
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
      await daemon.reload(next);
    } finally {
      sd.reloaded(summary());
    }
  };
  let server: import('../notify/server.js').NotifyServer;
  let metrics: import('../metrics/server.js').MetricsServer | undefined;
  try {
    server = await NotifyServer.start({ control: daemon.control(), notices: daemon, socket: config.socket, log, reload });
    if (config.metrics.listen) {
      const [{ MetricsServer }, { daemonRegistry }] = await Promise.all([import('../metrics/server.js'), import('../metrics/registry.js')]);
      metrics = await MetricsServer.start(config.metrics.listen, daemonRegistry(() => daemon.stats()), log);
    }
  } catch (err) {
    log.fatal({ err }, `cannot start: ${(err as Error).message}`);
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
        .finally(() => Promise.all([server.close(), metrics?.close()]))
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
        () => log.info('configuration reloaded (SIGHUP)'),
        (err) => log.error({ err: (err as Error).message }, 'reload refused: the old configuration stays'),
      );
    });
  });
}

quietOnClosedPipe();
/** Errors of ours with a stable code (BLESSD_CONFIG, BLESSD_MUSTPASS, BLESSD_SOCKET...): their message says it all. */
function isKnownError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('BLESSD_');
}

process.exitCode = await main(process.argv.slice(2));
