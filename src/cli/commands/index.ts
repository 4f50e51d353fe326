// The subcommands of blessctl. To add one: write commands/<name>.ts exporting a Command, and list it here.
import type { Command } from '../command.js';
import { generationCommand } from './generation.js';
import { tagsCommand } from './tags.js';

export const COMMANDS: readonly Command[] = [tagsCommand, generationCommand];
