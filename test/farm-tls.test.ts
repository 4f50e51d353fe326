// The out-of-process scanner protocol over TCP with TLS (src/farm/scanner-listener.ts): a blessd process with no
// engine of its own, whose stack's `remote` entry is served by examples/farm-scanner.js — a real scanner process
// that reaches it over TLS, presents a client certificate and the shared secret, and gets each file's content
// after its request line. Certificates are made here with openssl (a farm CA, a server and a client certificate,
// and a rogue CA's client certificate). Real fanotify on a private ext4 image. Two hosts on a private network
// (test/helpers/netns.ts): blessd in `node`, the scanners in `scan`; the test itself reaches `node` for the peers
// it plays by hand.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/config/index.js';
import { runChild } from './helpers/child.js';
import { withDaemonProcess, type DaemonProcess } from './helpers/daemon-process.js';
import { REPO } from './helpers/daemon-harness.js';
import { withNet, type NetHost } from './helpers/netns.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor, within } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;
const SCANNER = join(REPO, 'examples/farm-scanner.js');
const denied = /Operation not permitted/;
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

const config = (pki: Pki, listen: string) => (dir: string) => `guards: [{ path: ${dir}, kind: filesystem, wait: read }]
gate: { deadline: 20s, settleWalk: { enabled: false } }
pool: { threads: 1, scanTimeout: 5s }
log: { level: info }
farm: { listen: "${listen}:0", cert: ${pki.serverCert}, key: ${pki.serverKey}, ca: ${pki.ca}, secretFile: ${pki.secret}, helloTimeout: 2s }
stack:
  - actor: remote
    name: wordscan
    onError: deny
    onTimeout: deny
  - actor: default
    options: { answer: allow }
`;

const refusals = (d: DaemonProcess) => d.log().split('\n').filter((l) => l.includes('"msg":"farm: refused a scanner"'));

t0('TLS farm scanner: a client with the CA certificate and the secret scans for a node with no engine; a wrong secret, no certificate, a rogue certificate or silence are refused with a log line; junk gets an error; a scanner killed mid-scan → onError', async (t) => {
  const pki = await makePki(t);
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
  const server = `${node.addr}:${port}`;

  // Nobody serves wordscan yet: onError (deny), no hang.
  t.regex((await runChild('cat', [join(d.dir, 'before.txt')])).stderr, denied);

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

  // The good scanner: registered, it answers for the node.
  const good = startScanner(t, scan, server, ['--ca', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey, '--secret-file', pki.secret]);
  await waitFor('the good scanner registered', () => /"id":"register","ok":true/.test(good.output()), 10_000);
  t.regex(good.output(), /"fd":false/);
  t.is((await runChild('cat', [join(d.dir, 'clean.txt')])).stdout, 'fine words\n');
  const s = await runChild('cat', [join(d.dir, 'secret.txt')]);
  t.regex(s.stderr, denied, 'the farm scanner denies the word');
  t.is(s.stdout, '');
  // Several MiB: the content crosses in full, the word at its very end is found.
  t.regex((await runChild('cat', [join(d.dir, 'big.bin')])).stderr, denied);
  const status = await d.ctl(['status', '--json']);
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

  // The scanner killed while a file waits for it: onError (deny) at once, nothing left waiting.
  good.child.kill('SIGSTOP');
  const reader = runChild('cat', [join(d.dir, 'mid.txt')], { timeoutMs: 20_000 });
  await waitFor('the scan request sent to the stopped scanner', async () => {
    const st = JSON.parse((await d.ctl(['status', '--json'])).stdout) as { queues?: { scanners?: { name: string; inFlight: number }[] } };
    return (st.queues?.scanners ?? []).some((x) => x.name === 'wordscan' && x.inFlight > 0);
  }, 10_000);
  good.child.kill('SIGKILL');
  const r = await within('the reader after the scanner died', reader, 10_000);
  t.regex(r.stderr, denied, 'scanner gone mid-scan → onError: deny');
  t.true(r.ms < 4_000, `answered at the disconnect, not at the 5 s scan timeout (${Math.round(r.ms)} ms)`);
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
