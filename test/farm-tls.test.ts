// The out-of-process scanner protocol over TCP with TLS (src/farm/scanner-listener.ts): a blessd process with no
// engine of its own, whose stack's `remote` entry is served by examples/farm-scanner.js — a real scanner process
// that reaches it over TLS, presents a client certificate and the shared secret, and gets each file's content
// after its request line. Certificates are made here with openssl (a farm CA, a server and a client certificate,
// and a rogue CA's client certificate). Real fanotify on a private ext4 image. Two hosts on a private network
// (test/helpers/netns.ts): blessd in `node`, the scanners in `scan`; the test itself reaches `node` for the peers
// it plays by hand.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer as createNetServer, type Socket as NetSocket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { connect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/index.js';
import { FarmConnection, FarmListener } from '../src/farm/scanner-listener.js';
import { FarmError } from '../src/farm/errors.js';
import { isBlessdError } from '../src/errors.js';
import { LIMITS } from '../src/notify/protocol.js';
import { runChild } from './helpers/child.js';
import { withDaemonProcess, type DaemonProcess } from './helpers/daemon-process.js';
import { REPO } from './helpers/daemon-harness.js';
import { withNet, type NetHost } from './helpers/netns.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const SCANNER = join(REPO, 'examples/farm-scanner.js');
const denied = /Operation not permitted/;
// A deny that rests on a failure (timeout, crash, no scanner) is the retryable errno: nothing judged the content.
const retried = /Resource temporarily unavailable/;
const SECRET = 'a farm secret of more than sixteen bytes';

interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  rogueCert: string;
  rogueKey: string;
  secret: string;
  wrongSecret: string;
}

async function openssl(args: string[], cwd: string) {
  const r = await runChild('openssl', args, { cwd, timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A farm CA with a server certificate (DNS:blessd: clients ask for that name) and a client one; a rogue CA's client certificate. */
async function makePki(t: { teardown(fn: () => void): void }): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-farm-pki-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  for (const ca of ['ca', 'rogue-ca']) await openssl(['req', '-x509', ...key, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`], dir);
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=DNS:blessd\n');
  const sign = async (name: string, ca: string, ext?: string) => {
    await openssl(['req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...(ext ? ['-extfile', ext] : [])], dir);
  };
  await sign('server', 'ca', 'server.ext');
  await sign('scanner-a', 'ca');
  await sign('rogue', 'rogue-ca');
  await writeFile(join(dir, 'secret'), SECRET + '\n', { mode: 0o600 });
  await writeFile(join(dir, 'wrong'), 'not the farm secret, but long\n', { mode: 0o600 });
  const p = (f: string) => join(dir, f);
  return { dir, ca: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'), clientCert: p('scanner-a.pem'), clientKey: p('scanner-a.key'), rogueCert: p('rogue.pem'), rogueKey: p('rogue.key'), secret: p('secret'), wrongSecret: p('wrong') };
}

/** The port the farm listener bound (farm.listen port 0), from its log line. */
function farmPort(d: DaemonProcess): number {
  const line = d.log().split('\n').find((l) => l.includes('"msg":"farm: scanner listener (TLS) up"'));
  if (!line) throw new Error(`no farm listener line in the log:\n${d.log().slice(-2000)}`);
  return (JSON.parse(line) as { port: number }).port;
}

/** examples/farm-scanner.js as a child: its stdout lines (replies, errors) are what the test waits on. */
function startScanner(t: { teardown(fn: () => void | Promise<void>): void }, from: NetHost, to: string, args: string[]) {
  // `ip netns exec` execs: the child's pid is the scanner's own (SIGSTOP / SIGKILL reach it).
  const argv = [...from.prefix(), process.execPath, SCANNER, to, 'wordscan', 'FORBIDDEN', ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return { child, output: () => out, exited };
}

const config = (pki: Pki, listen: string, auth = `ca: ${pki.ca}, secretFile: ${pki.secret}`) => (dir: string) => `guards: [{ path: ${dir}, kind: filesystem, wait: read }]
gate: { deadline: 20s, settleWalk: { enabled: false } }
pool: { threads: 1, scanTimeout: 5s }
log: { level: info }
farm: { listen: "${listen}:0", cert: ${pki.serverCert}, key: ${pki.serverKey}, ${auth}, helloTimeout: 2s }
stack:
  - actor: remote
    name: wordscan
    onError: deny
    onTimeout: deny
  - actor: default
    options: { answer: allow }
`;

/** The registered scanners as `blessctl status` shows them (none while blessctl cannot answer yet: a loaded machine). */
async function scannerStatus(d: DaemonProcess): Promise<{ name: string; inFlight: number }[]> {
  const r = await d.ctl(['status', '--json'], 15_000);
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout) as { queues?: { scanners?: { name: string; inFlight: number }[] } }).queues?.scanners ?? [];
}

const refusals = (d: DaemonProcess) => d.log().split('\n').filter((l) => l.includes('"msg":"farm: refused a scanner"'));

/** A node guarded by blessd with the farm listener (`node`), and a host for the scanners (`scan`). */
async function farmNode(t: ExecutionContext, pki: Pki) {
  const net = await withNet(t, ['node', 'scan'], { reachFromTest: true });
  const [node, scan] = [net.hosts['node']!, net.hosts['scan']!];
  const d = await withDaemonProcess(t, 'ext4', config(pki, node.addr), {
    prefix: node.prefix(),
    prepare: async (dir) => {
      await writeFile(join(dir, 'clean.txt'), 'fine words\n');
      await writeFile(join(dir, 'secret.txt'), 'this says FORBIDDEN\n');
      await writeFile(join(dir, 'before.txt'), 'fine before\n');
      await writeFile(join(dir, 'big.bin'), Buffer.concat([Buffer.alloc(3 * 1024 * 1024, 'x'), Buffer.from('FORBIDDEN')]));
      await writeFile(join(dir, 'mid.txt'), 'fine mid\n');
    },
  });
  const port = farmPort(d);
  return { node, scan, d, port, server: `${node.addr}:${port}` };
}

const goodArgs = (pki: Pki) => ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--secret-file', pki.secret];

t0('TLS farm: refused with a log line naming the peer and why — a wrong secret, no client certificate, a rogue CA\'s certificate, a silent peer; with no scanner, onError', async (t) => {
  const pki = await makePki(t);
  const { node, scan, d, port, server } = await farmNode(t, pki);
  // Nobody serves wordscan yet: onError (deny), no hang.
  t.regex((await runChild('cat', [join(d.dir, 'before.txt')])).stderr, retried);

  // Refused peers: each gets a log line naming it and why, and never a scan request.
  const wrong = startScanner(t, scan, server, ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--secret-file', pki.wrongSecret]);
  await within('the wrong-secret scanner to be disconnected', wrong.exited, 10_000);
  t.regex(wrong.output(), /"code":"EPERM".*refused: wrong secret/);
  const noCert = startScanner(t, scan, server, ['--ca', pki.ca, '--secret-file', pki.secret]);
  await within('the scanner without a certificate to be disconnected', noCert.exited, 10_000);
  const rogue = startScanner(t, scan, server, ['--ca', pki.ca, '--cert', pki.rogueCert, '--key', pki.rogueKey, '--secret-file', pki.secret]);
  await within('the scanner with a rogue certificate to be disconnected', rogue.exited, 10_000);
  t.notRegex(noCert.output() + rogue.output(), /"event":"scan"|"ok":true/);
  await waitFor('three refusals in the log', () => refusals(d).length >= 3, 10_000);
  const lines = refusals(d).join('\n');
  t.regex(lines, /"reason":"wrong secret"/);
  t.regex(lines, /"reason":"no client certificate/);
  t.regex(lines, /"reason":"client certificate not signed by farm.ca/);
  t.regex(noCert.output(), /"code":"EPERM".*refused: no client certificate/);
  t.regex(rogue.output(), /"code":"EPERM".*refused: client certificate not signed/);
  // A peer that connects with a good certificate and says nothing is dropped at farm.helloTimeout.
  const silent = await tlsConnect(node.addr, port, pki, true);
  silent.resume(); // read, so that the server's end is seen
  await within('the silent peer to be dropped after helloTimeout', new Promise((r) => silent.once('close', r)), 10_000).catch((e) => { throw new Error(e.message + refusals(d).join('\n')); });
  await waitFor('the silent peer refused in the log', () => refusals(d).some((l) => l.includes('no hello with the secret')), 5_000);
  t.is(await d.stop(), 0);
});

t0('TLS farm: a scanner with the CA\'s certificate and the secret scans for a node with no engine (content after each request, 3 MiB in chunks); bad lines get errors that say what', async (t) => {
  const pki = await makePki(t);
  const { node, scan, d, port, server } = await farmNode(t, pki);
  // The good scanner: registered, it answers for the node.
  const good = startScanner(t, scan, server, goodArgs(pki));
  await waitFor('the good scanner registered', () => /"id":"register","ok":true/.test(good.output()), 10_000);
  t.regex(good.output(), /"fd":false/);
  t.is((await runChild('cat', [join(d.dir, 'clean.txt')])).stdout, 'fine words\n');
  const s = await runChild('cat', [join(d.dir, 'secret.txt')]);
  t.regex(s.stderr, denied, 'the farm scanner denies the word');
  t.is(s.stdout, '');
  // Several MiB: the content crosses in full, the word at its very end is found.
  t.regex((await runChild('cat', [join(d.dir, 'big.bin')])).stderr, denied);
  const status = await d.ctl(['status', '--json'], 15_000);
  t.true(status.stdout.includes(`"client":"tls ${scan.addr}:`) && status.stdout.includes('CN=scanner-a"'), status.stdout.slice(0, 2000));

  // Bad messages from an authenticated peer: an error that says what was wrong, the daemon goes on.
  const peer = await tlsConnect(node.addr, port, pki, true);
  const replies = collect(peer);
  peer.write(JSON.stringify({ v: 1, id: 1, op: 'hello', secret: SECRET }) + '\n');
  peer.write('{not json\n');
  peer.write(JSON.stringify({ v: 1, id: 3, op: 'answer', req: 999_999, answer: 'ok' }) + '\n');
  peer.write(JSON.stringify({ v: 1, id: 4, op: 'reload' }) + '\n');
  await waitFor('three error replies', () => replies().filter((r) => r.ok === false).length >= 3, 5_000);
  const errors = replies().filter((r) => r.ok === false).map((r) => `${(r.error as { code: string }).code}: ${(r.error as { message: string }).message}`);
  t.true(errors.some((e) => /^BAD_JSON: not JSON/.test(e)), errors.join('\n'));
  t.true(errors.some((e) => /^UNKNOWN_REQUEST: no scan request 999999/.test(e)), errors.join('\n'));
  t.true(errors.some((e) => /^UNKNOWN_OP: "reload" is not open to farm scanners/.test(e)), errors.join('\n'));
  peer.destroy();

  t.is(await d.stop(), 0);
});

t0('TLS farm: the scanner killed while a file waits for it → onError at once (not the scan timeout)', async (t) => {
  const pki = await makePki(t);
  const { scan, d, server } = await farmNode(t, pki);
  const good = startScanner(t, scan, server, goodArgs(pki));
  await waitFor('the good scanner registered', () => /"id":"register","ok":true/.test(good.output()), 10_000);
  // The scanner killed while a file waits for it: onError (deny) at once, nothing left waiting.
  good.child.kill('SIGSTOP');
  const reader = runChild('cat', [join(d.dir, 'mid.txt')], { timeoutMs: 20_000 });
  await waitFor('the scan request sent to the stopped scanner', async () => {
    const st = await scannerStatus(d);
    return st.some((x) => x.name === 'wordscan' && x.inFlight > 0);
  }, 10_000);
  good.child.kill('SIGKILL');
  const r = await within('the reader after the scanner died', reader, 10_000);
  t.regex(r.stderr, retried, 'scanner gone mid-scan → onError: deny, retryable');
  // Answered by the disconnect (onError, "crash"), not by the scan timeout.
  const why = d.log().split('\n').find((l) => l.includes('"msg":"denied ') && l.includes('mid.txt'));
  t.regex(why ?? '', /crash: wordscan: the scanner disconnected/, d.log().slice(-2000));
  t.is(await d.stop(), 0);
});

function tlsConnect(host: string, port: number, pki: Pki, withCert: boolean): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, servername: 'blessd', ca: [readFileSync(pki.ca)], ...(withCert ? { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) } : {}) });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}


/** Every JSON line a socket receives, parsed. */
function collect(s: TLSSocket): () => Record<string, unknown>[] {
  let buf = '';
  const got: Record<string, unknown>[] = [];
  s.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      got.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  s.on('error', () => {});
  return () => got;
}

test('farm config: a listener without TLS material or without a way to authenticate scanners is refused, naming the key', (t) => {
  const base = 'guards: [{ path: /srv }]\nstack: [{ actor: default, options: { answer: allow } }]\n';
  const parse = (farm: string) => parseConfig(base + farm, '/etc/blessd/config.yaml');
  t.is(parse('').farm.listen, null, 'off unless asked for');
  const both = parse('farm: { listen: "0.0.0.0:7350", cert: /etc/blessd/s.pem, key: /etc/blessd/s.key, ca: /etc/blessd/ca.pem, secretFile: /etc/blessd/farm.secret }\n').farm;
  t.deepEqual(both.listen, { host: '0.0.0.0', port: 7350 });
  t.is(both.ca, '/etc/blessd/ca.pem');
  t.is(both.helloTimeoutMs, 5000);
  const noAuth = t.throws(() => parse('farm: { listen: "0.0.0.0:7350", cert: s.pem, key: s.key }\n'));
  t.regex(noAuth!.message, /config\.yaml:3:\d+: farm: farm\.listen needs farm\.ca .* or farm\.secretFile/);
  const noCert = t.throws(() => parse('farm: { listen: "0.0.0.0:7350", secretFile: f }\n'));
  t.regex(noCert!.message, /config\.yaml:3:\d+: farm\.cert: required with farm\.listen/);
  t.regex(noCert!.message, /farm\.key: required with farm\.listen/);
  const badListen = t.throws(() => parse('farm: { listen: "somewhere", cert: s.pem, key: s.key, ca: ca.pem }\n'));
  t.regex(badListen!.message, /config\.yaml:3:\d+: farm\.listen: must be HOST:PORT/);
  t.throws(() => parse('farm: { listen: "0.0.0.0:7350", cert: s.pem, key: s.key, ca: ca.pem, sekret: x }\n'), { message: /farm\.sekret/ });
});

test('farm listener: a file it cannot use is a FarmError (BLESSD_FARM) naming the key and the file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'blessd-farm-files-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const farm = (extra: string) =>
    parseConfig(`guards: [{ path: /srv }]\nstack: [{ actor: default, options: { answer: allow } }]\nfarm: { listen: "127.0.0.1:0", cert: ${join(dir, 'none.pem')}, key: ${join(dir, 'none.key')}, ${extra} }\n`, '/etc/blessd/config.yaml').farm;
  const start = (f: ReturnType<typeof farm>) => FarmListener.start({ farm: f, control: {} as never, log: {} as never });
  const short = join(dir, 'farm.secret');
  await writeFile(short, 'too short\n');
  const missing = await t.throwsAsync(start(farm(`ca: ${join(dir, 'ca.pem')}`)), { instanceOf: FarmError });
  t.true(isBlessdError(missing));
  t.is(missing!.code, 'BLESSD_FARM');
  t.regex(missing!.message, new RegExp(`^farm\\.cert ${join(dir, 'none.pem')}: ENOENT`));
  t.is((missing!.cause as NodeJS.ErrnoException).code, 'ENOENT');
  const weak = await t.throwsAsync(start(farm(`secretFile: ${short}`)), { instanceOf: FarmError });
  t.regex(weak!.message, new RegExp(`^farm\\.secretFile ${short}: the secret must be at least \\d+ bytes`));
});

t0('one scanner process serves two file servers over TLS: one admits by secret only, the other by client certificate only', async (t) => {
  const pki = await makePki(t);
  const net = await withNet(t, ['fs1', 'fs2', 'scan']);
  const files = async (dir: string) => {
    await writeFile(join(dir, 'clean.txt'), 'fine words\n');
    await writeFile(join(dir, 'secret.txt'), 'this says FORBIDDEN\n');
  };
  const fs1 = await withDaemonProcess(t, 'ext4', config(pki, net.hosts['fs1']!.addr, `secretFile: ${pki.secret}`), { prefix: net.hosts['fs1']!.prefix(), prepare: files });
  const fs2 = await withDaemonProcess(t, 'ext4', config(pki, net.hosts['fs2']!.addr, `ca: ${pki.ca}`), { prefix: net.hosts['fs2']!.prefix(), prepare: files });
  const servers = [`${net.hosts['fs1']!.addr}:${farmPort(fs1)}`, `${net.hosts['fs2']!.addr}:${farmPort(fs2)}`];
  const scanner = startScanner(t, net.hosts['scan']!, servers.join(','), ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--secret-file', pki.secret]);
  await waitFor('the scanner registered on both servers', () => servers.every((s) => scanner.output().includes(`${s} {"v":1,"id":"register","ok":true`)), 10_000);
  for (const d of [fs1, fs2]) {
    t.is((await runChild('cat', [join(d.dir, 'clean.txt')])).stdout, 'fine words\n');
    const s = await runChild('cat', [join(d.dir, 'secret.txt')]);
    t.regex(s.stderr, denied);
    t.is(s.stdout, '');
  }
  t.is(refusals(fs1).length + refusals(fs2).length, 0);
  for (const d of [fs1, fs2]) t.is(await d.stop(), 0);
});

/** A peer's view of the wire: lines, and for each scan line the `content` bytes that follow it. */
function rawReader(s: TLSSocket | NetSocket) {
  // Chunks are joined only once a whole line or a whole content is there (16 MiB arrive in thousands of chunks).
  let parts: Buffer[] = [];
  let have = 0;
  let scan: { content: number } | null = null;
  const lines: string[] = [];
  const scans: { content: Buffer }[] = [];
  const take = (n: number) => {
    const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
    parts = have > n ? [all.subarray(n)] : [];
    have -= n;
    return all.subarray(0, n);
  };
  s.on('data', (d: Buffer) => {
    parts.push(d);
    have += d.length;
    for (;;) {
      if (scan) {
        if (have < scan.content) return;
        scans.push({ content: Buffer.from(take(scan.content)) });
        scan = null;
        continue;
      }
      const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
      parts = [all];
      const nl = all.indexOf(10);
      if (nl < 0) return;
      const line = take(nl + 1).subarray(0, nl).toString('utf8');
      lines.push(line);
      const msg = JSON.parse(line) as { event?: string; content?: number };
      if (msg.event === 'scan') scan = { content: msg.content ?? 0 };
    }
  });
  s.on('error', () => {});
  return { lines: () => lines, scans: () => scans, pending: () => have };
}

test('farm connection: a reply written while a file\'s content is being sent waits for its last byte', async (t) => {
  // A real TCP connection on loopback and a real 16 MiB file: the peer stops reading once the request line came,
  // so the sender is held in mid-file by backpressure; a reply written then must come after the content.
  const dir = mkdtempSync(join(tmpdir(), 'blessd-farm-conn-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'big.bin');
  const big = Buffer.alloc(16 * 1024 * 1024, 'p');
  await writeFile(file, big);
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => void server.close());
  const accepted = new Promise<NetSocket>((r) => server.once('connection', r));
  const peer = netConnect({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
  const raw = rawReader(peer);
  const conn = new FarmConnection(await accepted, LIMITS, () => {}, () => {}, { pid: 0, uid: 0, gid: 0 }, 'test peer');
  t.teardown(() => conn.close());
  const fd = openSync(file, 'r');
  t.teardown(() => closeSync(fd));
  peer.pause();
  const sent = conn.sendScan({ req: 1, scanner: 'peek', path: file, size: big.length, dev: 0, ino: 0, fsid: null, handle: null, handleType: null, mountId: null }, fd);
  await waitFor('the sender held in mid-file by backpressure', () => (conn as unknown as { streaming: boolean }).streaming && conn.socket.writableLength > 0, 10_000);
  conn.error(7, 'BAD_JSON', 'not JSON: written while content flows');
  peer.resume();
  await within('the whole file sent', sent, 20_000);
  await waitFor('the reply after the content', () => raw.lines().some((l) => l.includes('"code":"BAD_JSON"')), 10_000);
  t.is(raw.scans().length, 1);
  t.true(raw.scans()[0]!.content.equals(big), 'the content is the file\'s bytes, with nothing inside it');
  t.regex(raw.lines()[0]!, /"event":"scan".*"content":16777216/);
  t.regex(raw.lines()[1]!, /"id":7,"ok":false.*BAD_JSON/);
  peer.destroy();
});
