// The tools people use today, run against the bench mount only, each with a private configuration, a hard time limit
// and a stop that cannot be skipped:
// - Debian's fapolicyd: in a private mount namespace (so its /etc/fapolicyd, /var/lib/fapolicyd and /run are ours,
//   the machine's files untouched), watch_fs = the bench filesystem's type ONLY, a filesystem mark (so accesses from
//   the normal namespace are seen), an allow-all rule. Refused unless the bench mount is the only mount of that type.
// - ClamAV's clamonacc + clamd: a private clamd.conf (our hand-written database directory, no freshclam, socket and
//   logs in our temp dir), OnAccessIncludePath = the bench mount, OnAccessPrevention yes, fd passing, clamd as the
//   clamav user and that user excluded (clamonacc insists).
// Packages are installed with apt-get if missing, with service starts suppressed (policy-rc.d) so that installing
// never starts a system-wide instance.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { cpuSeconds } from './proc.js';

const run = promisify(execFile);

async function have(bin: string): Promise<boolean> {
  return run('which', [bin]).then(
    () => true,
    () => false,
  );
}

/** apt-get install what is missing, never letting the packages' services start. */
export async function ensurePeersInstalled(log: (s: string) => void): Promise<void> {
  const missing: string[] = [];
  if (!(await have('fapolicyd'))) missing.push('fapolicyd');
  if (!(await have('clamd')) || !(await have('clamonacc'))) missing.push('clamav-daemon');
  if (missing.length === 0) return;
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) await writeFile(policy, '#!/bin/sh\n# written by blessd bench/lib/peers.ts while installing peers\nexit 101\n', { mode: 0o755 });
  try {
    log(`installing ${missing.join(', ')} (apt-get)`);
    await run('apt-get', ['update'], { timeout: 300_000 }).catch(() => {});
    await run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } finally {
    if (ownPolicy) await rm(policy, { force: true });
  }
}

export interface Peer {
  name: string;
  pids: number[];
  /** CPU seconds of all the peer's processes. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
  /** The peer's own log, for the report when something goes wrong. */
  logFile: string;
}

/** A child with a hard limit: SIGKILL when it passes, whatever the bench is doing. */
function limited(child: ChildProcess, limitMs: number, name: string): { exited: Promise<void>; stop: () => Promise<void> } {
  let done = false;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      done = true;
      resolve();
    }),
  );
  const timer = setTimeout(() => {
    process.stderr.write(`${name}: hard time limit (${limitMs} ms) reached, killing it\n`);
    child.kill('SIGKILL');
  }, limitMs);
  timer.unref();
  const stop = async () => {
    clearTimeout(timer);
    if (done) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  return { exited, stop };
}

async function waitFor(what: string, check: () => Promise<boolean>, exited: Promise<void>, timeoutMs: number, logFile: string) {
  let gone = false;
  void exited.then(() => (gone = true));
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    if (gone) break;
    await sleep(100);
  }
  const log = await readFile(logFile, 'utf8').catch(() => '');
  throw new Error(`${what}: ${gone ? 'exited' : 'not ready'} within ${timeoutMs} ms; log ${logFile}:\n${log.split('\n').slice(-15).join('\n')}`);
}

async function logContains(file: string, text: string): Promise<boolean> {
  return (await readFile(file, 'utf8').catch(() => '')).includes(text);
}

function spawnLogged(cmd: string, args: string[], logFile: string): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: Buffer[] = [];
  const flush = () => writeFile(logFile, Buffer.concat(chunks)).catch(() => {});
  child.stdout!.on('data', (d) => (chunks.push(d), void flush()));
  child.stderr!.on('data', (d) => (chunks.push(d), void flush()));
  return child;
}

/** The filesystem type of the bench mount must be that of no other mount (fapolicyd watches a type, not a path). */
export async function assertOnlyMountOfType(mount: string, fsType: string): Promise<void> {
  const { stdout } = await run('findmnt', ['-rn', '-t', fsType, '-o', 'TARGET']);
  const others = stdout.split('\n').filter((l) => l && l !== mount);
  if (others.length > 0) throw new Error(`fapolicyd would watch every ${fsType} mount, and these are not ours: ${others.join(', ')}; refusing`);
  for (const p of ['/', '/tmp', '/var', '/usr', '/etc', '/run']) {
    const t = (await run('findmnt', ['-rn', '-T', p, '-o', 'FSTYPE'])).stdout.trim();
    if (t === fsType) throw new Error(`fapolicyd would watch ${p} (${t}); refusing`);
  }
}

export async function startFapolicyd(base: string, mount: string, fsType: string, limitMs: number): Promise<Peer> {
  await assertOnlyMountOfType(mount, fsType);
  const dir = join(base, 'fapolicyd');
  const etc = join(dir, 'etc');
  const lib = join(dir, 'lib');
  await mkdir(join(etc, 'rules.d'), { recursive: true });
  await mkdir(join(etc, 'trust.d'), { recursive: true });
  await mkdir(lib, { recursive: true });
  // Debian's defaults, except: root (setuid to the fapolicyd user is refused in this container), watch_fs = the bench
  // type only, file trust only (empty), filesystem marks, no nice.
  await writeFile(
    join(etc, 'fapolicyd.conf'),
    `permissive = 0
nice_val = 0
q_size = 640
uid = root
gid = root
do_stat_report = 1
detailed_report = 1
db_max_size = 50
subj_cache_size = 1549
obj_cache_size = 8191
watch_fs = ${fsType}
trust = file
integrity = none
syslog_format = rule,dec,perm,auid,pid,exe,:,path,ftype,trust
rpm_sha256_only = 0
allow_filesystem_mark = 1
`,
  );
  const rules = 'allow perm=any all : all\n';
  await writeFile(join(etc, 'compiled.rules'), rules);
  await writeFile(join(etc, 'fapolicyd.rules'), rules);
  await writeFile(join(etc, 'fapolicyd.trust'), '');
  const logFile = join(dir, 'fapolicyd.log');
  const script = [
    `mount --bind ${etc} /etc/fapolicyd`,
    `mount --bind ${lib} /var/lib/fapolicyd`,
    'mount -t tmpfs -o size=16m tmpfs /run',
    'mkdir -p /run/fapolicyd',
    'exec fapolicyd --debug-deny',
  ].join(' && ');
  // unshare execs sh, sh execs fapolicyd: the child's pid is fapolicyd's.
  const child = spawnLogged('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script], logFile);
  const { exited, stop } = limited(child, limitMs, 'fapolicyd');
  try {
    await waitFor('fapolicyd', () => logContains(logFile, 'Starting to listen for events'), exited, 60_000, logFile);
    if (!(await logContains(logFile, `added ${mount} mount point`))) throw new Error(`fapolicyd did not report watching ${mount}; log ${logFile}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const pid = child.pid!;
  return { name: 'fapolicyd', pids: [pid], cpuSeconds: () => cpuSeconds(pid), stop, logFile };
}

export async function startClamav(base: string, mount: string, databases: string, limitMs: number): Promise<Peer> {
  const dir = join(base, 'clamav');
  await mkdir(join(dir, 'tmp'), { recursive: true });
  await chmod(base, 0o711); // clamd runs as clamav and must reach its socket and database below base
  const { uid, gid } = await idOf('clamav');
  await run('chown', ['-R', `${uid}:${gid}`, dir]);
  await run('chmod', ['-R', 'a+rX', databases]);
  const conf = join(dir, 'clamd.conf');
  const sock = join(dir, 'clamd.sock');
  await writeFile(
    conf,
    `LocalSocket ${sock}
Foreground yes
DatabaseDirectory ${databases}
LogFile ${join(dir, 'clamd.log')}
TemporaryDirectory ${join(dir, 'tmp')}
PidFile ${join(dir, 'clamd.pid')}
User clamav
Bytecode no
MaxFileSize 128M
MaxScanSize 512M
OnAccessIncludePath ${mount}
OnAccessPrevention yes
OnAccessMaxFileSize 128M
OnAccessExcludeUname clamav
`,
  );
  await chown(conf, uid, gid);
  const clamdLog = join(dir, 'clamd.out');
  const clamd = spawnLogged('clamd', [`--config-file=${conf}`], clamdLog);
  const clamdCtl = limited(clamd, limitMs, 'clamd');
  let onaccCtl: ReturnType<typeof limited> | undefined;
  const stopAll = async () => {
    await onaccCtl?.stop();
    await clamdCtl.stop();
  };
  try {
    await waitFor('clamd', async () => existsSync(sock), clamdCtl.exited, 120_000, join(dir, 'clamd.log'));
    const logFile = join(dir, 'clamonacc.log');
    const onacc = spawnLogged('clamonacc', ['--foreground', '--verbose', `--config-file=${conf}`, '--fdpass', `--log=${join(dir, 'clamonacc-scan.log')}`], logFile);
    onaccCtl = limited(onacc, limitMs, 'clamonacc');
    await waitFor('clamonacc', () => logContains(logFile, 'waiting to consume events'), onaccCtl.exited, 60_000, logFile);
    await sleep(1000); // its inotify thread marks the directories below the include path
    const pids = [clamd.pid!, onacc.pid!];
    return { name: 'clamonacc + clamd', pids, cpuSeconds: async () => (await Promise.all(pids.map((p) => cpuSeconds(p).catch(() => 0)))).reduce((a, b) => a + b, 0), stop: stopAll, logFile };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function idOf(user: string): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', user])).stdout.trim());
  const gid = Number((await run('id', ['-g', user])).stdout.trim());
  return { uid, gid };
}
