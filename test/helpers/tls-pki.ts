// Certificates for the TLS store tests, made by the test with openssl in a directory removed at teardown: a CA, one
// server certificate per store node whose only subject alternative name is that node's IP address (a client that
// checked a node against another node's address would fail), a client certificate (the nodes ask for one:
// tls-auth-clients), and a rogue CA that signed nothing here — trusting it is trusting the wrong CA.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runChild } from './child.js';

type Teardown = { teardown(fn: () => void | Promise<void>): void };

export interface Pki {
  dir: string;
  ca: string;
  rogueCa: string;
  /** Per node address: its certificate and key. */
  servers: Map<string, { cert: string; key: string }>;
  clientCert: string;
  clientKey: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await runChild('openssl', args, { cwd, timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.code ?? r.signal}: ${r.stderr}`);
}

/**
 * `names`: per server address, the one name its certificate carries instead of that address (a DNS SAN: a client
 * must ask for it with `servername`, as the address no longer matches).
 */
export async function makePki(t: Teardown, serverAddrs: string[], names: Record<string, string> = {}): Promise<Pki> {
  const dir = await mkdtemp(join(tmpdir(), 'blessd-store-pki-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  for (const ca of ['ca', 'rogue-ca']) await openssl(['req', '-x509', ...newKey, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=blessd test ${ca}`], dir);
  const sign = async (name: string, ext?: string) => {
    await openssl(['req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', ...(ext ? ['-extfile', ext] : [])], dir);
  };
  const p = (f: string) => join(dir, f);
  const servers = new Map<string, { cert: string; key: string }>();
  for (const [i, addr] of serverAddrs.entries()) {
    const name = `node-${i + 1}`;
    await writeFile(p(`${name}.ext`), `subjectAltName=${names[addr] === undefined ? `IP:${addr}` : `DNS:${names[addr]}`}\n`);
    await sign(name, `${name}.ext`);
    servers.set(addr, { cert: p(`${name}.pem`), key: p(`${name}.key`) });
  }
  await sign('client');
  return { dir, ca: p('ca.pem'), rogueCa: p('rogue-ca.pem'), servers, clientCert: p('client.pem'), clientKey: p('client.key') };
}

/**
 * redis-server's arguments for TLS only on `port` (no plain-text port), client certificates asked for; with
 * `cluster`, the cluster bus and replication too.
 */
export function redisTlsArgs(pki: Pki, addr: string, port: number, { cluster = true } = {}): string[] {
  const own = pki.servers.get(addr);
  if (!own) throw new Error(`no certificate for ${addr}`);
  return [
    '--port', '0',
    '--tls-port', String(port),
    '--tls-cert-file', own.cert,
    '--tls-key-file', own.key,
    '--tls-ca-cert-file', pki.ca,
    '--tls-auth-clients', 'yes',
    ...(cluster ? ['--tls-cluster', 'yes', '--tls-replication', 'yes'] : []),
  ];
}

/** redis-cli's arguments to reach a TLS node (with the client certificate). */
export function redisCliTlsArgs(pki: Pki): string[] {
  return ['--tls', '--cacert', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey];
}
