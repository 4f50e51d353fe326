#!/usr/bin/env node
// blessd: `run` guards what config.yaml says, in the foreground; `check` validates a config and explains it.
// Signals: SIGTERM/SIGINT answer everything pending, remove every mark and the control socket, and exit 0; SIGHUP
// (or `blessctl reload`) reloads the config (a bad one is reported and the old one kept).
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/index.js';
import type { Config } from '../config/types.js';
import { Daemon } from '../daemon/daemon.js';
import { makeLogger } from '../daemon/logger.js';
import { NotifyServer } from '../notify/server.js';
import { effectiveStack } from '../policy/must-pass.js';
import { explainStack } from '../policy/stack.js';
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
  if (values.help || cmd === undefined || (cmd !== 'run' && cmd !== 'check')) {
    process.stderr.write(USAGE + '\n');
    return values.help ? 0 : 2;
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
  const { stack, warnings } = await effectiveStack(config);
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
  const log = makeLogger(config.log.level);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log, { guardsFile: process.env['BLESSD_GUARDS_FILE'] ?? DEFAULT_GUARDS_FILE });
  } catch (err) {
    log.fatal({ err }, `cannot start: ${(err as Error).message}`);
    return 1;
  }
  const reload = async () => {
    const next = loadConfig(file); // throws ConfigError naming file:line: the old configuration stays
    await daemon.reload(next);
  };
  let server: NotifyServer;
  try {
    server = await NotifyServer.start({ control: daemon.control(), notices: daemon, socket: config.socket, log, reload });
  } catch (err) {
    log.fatal({ err }, `cannot start: ${(err as Error).message}`);
    await daemon.stop();
    return 1;
  }
  log.info({ config: config.file, socket: config.socket.path }, 'blessd ready');
  process.stdout.write('ready\n');

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping: answering everything pending');
      // The daemon first: every waiting access is answered before anything else; then the socket goes.
      daemon
        .stop()
        .finally(() => server.close())
        .then(
          () => resolve(0),
          (err) => {
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

process.exitCode = await main(process.argv.slice(2));
