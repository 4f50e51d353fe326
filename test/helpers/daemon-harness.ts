// A real daemon, in this process, guarding a private scratch filesystem. Accesses in tests come from child
// processes (our own are exempt by design). Stopped and unmounted on teardown, also on failure.
import type { ExecutionContext } from 'ava';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/index.js';
import type { Config } from '../../src/config/types.js';
import { Daemon, type Notice } from '../../src/daemon/daemon.js';
import { makeLogger } from '../../src/daemon/logger.js';
import { makeScratch, type Scratch, type ScratchKind } from './scratch.js';

export const REPO = process.cwd();
export const FIXTURES = join(REPO, 'dist/test/fixtures');

export interface DaemonHarness {
  daemon: Daemon;
  scratch: Scratch;
  dir: string;
  state: string;
  config: Config;
  /** The daemon's notices, collected only with `notices: true` (else always empty). */
  notices: Notice[];
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** `stack` and `extra` are YAML fragments (`extra` may be built from the guarded mount point); `dir` is the scratch mount point; `guard` a directory below it to guard instead (made by `prepare`). */
export async function withDaemon(
  t: ExecutionContext,
  fs: ScratchKind,
  opts: {
    stack?: string;
    extra?: string | ((dir: string) => string);
    /** More `gate:` keys, as YAML lines indented by two spaces (e.g. "  onDeadline: allow"). */
    gate?: string;
    deadline?: string;
    wait?: 'read' | 'open';
    kind?: 'filesystem' | 'tree' | 'mount';
    guard?: string;
    debounce?: string;
    scanTimeout?: string;
    queuePerUid?: number;
    rescan?: 'onClose' | 'onRead';
    whileWriting?: 'wait' | 'allow';
    guardsFile?: string;
    /** gate.settleWalk as a YAML flow mapping; off unless asked for, so that counts of first accesses stay exact. */
    settleWalk?: string;
    prepare?: (dir: string) => Promise<void>;
    /**
     * Collect the daemon's notices into h.notices. Off unless asked for: any 'notice' listener turns the native
     * lane queue off (it builds no verdict notices: daemon.ts syncLaneQueue), and the lane is what cold files take.
     */
    notices?: boolean;
  } = {},
): Promise<DaemonHarness> {
  const scratch = await makeScratch(fs, 128);
  const state = join(scratch.base, 'state');
  await mkdir(state);
  if (opts.prepare) await opts.prepare(scratch.dir);
  const stack =
    opts.stack ??
    `  - actor: signature
    options: { databases: [${join(REPO, 'signatures')}] }
  - actor: default
    options: { answer: allow }`;
  const yaml = `stateDir: ${state}
guards:
  - path: ${opts.guard ? join(scratch.dir, opts.guard) : scratch.dir}
    kind: ${opts.kind ?? 'filesystem'}
    wait: ${opts.wait ?? 'read'}
gate:
  deadline: ${opts.deadline ?? '20s'}
  whileWriting: ${opts.whileWriting ?? 'wait'}
  settleWalk: ${opts.settleWalk ?? '{ enabled: false }'}
${opts.gate ?? ''}
pool:
  threads: 2
  scanTimeout: ${opts.scanTimeout ?? '5s'}
  queuePerUid: ${opts.queuePerUid ?? 1024}
  rescanDebounce: ${opts.debounce ?? '50ms'}
${opts.rescan ? `  rescan: ${opts.rescan}\n` : ''}socket:
  path: ${join(scratch.base, 'blessd.sock')}
log:
  level: ${process.env.BLESSD_TEST_LOG ?? 'error'}
stack:
${stack}
${typeof opts.extra === 'function' ? opts.extra(scratch.dir) : (opts.extra ?? '')}`;
  const config = parseConfig(yaml, join(scratch.base, 'config.yaml'));
  const notices: Notice[] = [];
  const log = makeLogger(config.log.level);
  const h: DaemonHarness = {
    daemon: undefined as unknown as Daemon,
    scratch,
    dir: scratch.dir,
    state,
    config,
    notices,
    async restart() {
      await h.daemon.stop();
      h.daemon = await Daemon.start(config, log, { guardsFile: opts.guardsFile });
      if (opts.notices) h.daemon.on('notice', (n: Notice) => notices.push(n));
    },
    async stop() {
      await h.daemon.stop();
    },
  };
  t.teardown(async () => {
    await h.daemon?.stop().catch(() => {});
    await scratch.cleanup();
  });
  h.daemon = await Daemon.start(config, log, { guardsFile: opts.guardsFile });
  if (opts.notices) h.daemon.on('notice', (n: Notice) => notices.push(n));
  return h;
}
