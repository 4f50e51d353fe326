// The subcommands of blessctl. To add one: write commands/<name>.ts exporting a Command, and list it here.
// tags and generation work offline (on the files and the state directory); the others talk to the running
// daemon over its control socket (generation bump too, when a daemon answers).
import type { Command } from '../command.js';
import { baselineCommand } from './baseline.js';
import { explainCommand } from './explain.js';
import { generationCommand } from './generation.js';
import { reloadCommand } from './reload.js';
import { scanCommand } from './scan.js';
import { statsCommand } from './stats.js';
import { statusCommand } from './status.js';
import { subscribeCommand } from './subscribe.js';
import { tagsCommand } from './tags.js';
import { topCommand } from './top.js';
import { waitReadyCommand } from './wait-ready.js';

export const COMMANDS: readonly Command[] = [
  statusCommand,
  statsCommand,
  topCommand,
  scanCommand,
  tagsCommand,
  explainCommand,
  subscribeCommand,
  generationCommand,
  baselineCommand,
  reloadCommand,
  waitReadyCommand,
];
