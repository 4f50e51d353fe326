// The fleet's configuration and its value format: bad input gets an error naming the place, and a value that is
// not exactly what the fleet key signed under exactly this key is refused, whatever else it looks like.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../src/config/index.js';
import { FleetKeyError, loadFleetKey } from '../src/fleet/key.js';
import { isBlessdError } from '../src/errors.js';
import { openFleet } from '../src/fleet/policy.js';
import { shownStoreUrl as shownUrl } from '../src/fleet/store-url.js';
import { parseStoreUrl } from '../src/fleet/store-url.js';
import { FleetTlsError, loadStoreTls } from '../src/fleet/tls.js';
import { decodeValue, encodeValue, storeKey } from '../src/fleet/value.js';
import { runChild } from './helpers/child.js';

const MINIMAL = `guards:
  - path: /srv/files
stack:
  - actor: default
    options: { answer: allow }
`;

function problems(text: string): readonly string[] {
  try {
    parseConfig(text, '/etc/blessd/config.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

test('fleet: defaults (off), and a full section', (t) => {
  const off = parseConfig(MINIMAL, '/etc/blessd/config.yaml').fleet;
  t.is(off.store, null);
  t.is(off.keyFile, '/var/lib/blessd/fleet.key');
  t.is(off.timeout, 100);
  const on = parseConfig(`${MINIMAL}fleet:\n  store: rediss://u:p@10.0.0.5:6380/2\n  keyFile: keys/fleet.key\n  timeout: 250ms\n  ttl: 1d\n  host: fs-07\n`, '/etc/blessd/config.yaml').fleet;
  t.deepEqual(on, { store: 'rediss://u:p@10.0.0.5:6380/2', tls: { ca: null, cert: null, key: null, servername: null }, keyFile: '/etc/blessd/keys/fleet.key', timeout: 250, ttl: 86_400_000, host: 'fs-07' });
  t.is(shownUrl(on.store!), 'rediss://u:***@10.0.0.5:6380/2', 'logs never show the password');
});

test('fleet: a cluster store is named by its scheme, with a few of its nodes', (t) => {
  const c = parseConfig(`${MINIMAL}fleet:\n  store: redis+cluster://u:p%40ss@10.0.0.5:7000,node-2.example,[fd00::7]:7002/\n`, '/etc/blessd/config.yaml').fleet;
  t.is(c.store, 'redis+cluster://u:p%40ss@10.0.0.5:7000,node-2.example,[fd00::7]:7002/');
  t.deepEqual(parseStoreUrl(c.store!), {
    kind: 'cluster',
    nodes: [
      { host: '10.0.0.5', port: 7000 },
      { host: 'node-2.example', port: 6379 },
      { host: 'fd00::7', port: 7002 },
    ],
    tls: false,
    username: 'u',
    password: 'p@ss',
  });
  t.is(shownUrl(c.store!), 'redis+cluster://u:***@10.0.0.5:7000,node-2.example:6379,[fd00::7]:7002', 'logs never show the password');
  t.deepEqual(parseStoreUrl('redis://10.0.0.5'), { kind: 'single', url: 'redis://10.0.0.5', tls: false });
  t.deepEqual(parseStoreUrl('rediss://10.0.0.5'), { kind: 'single', url: 'rediss://10.0.0.5', tls: true });
});

test('fleet: TLS to a cluster (rediss+cluster://) with fleet.tls, paths relative to the config file', (t) => {
  const c = parseConfig(`${MINIMAL}fleet:\n  store: rediss+cluster://u:p@10.0.0.5:7000,10.0.0.6\n  tls:\n    ca: tls/ca.pem\n    cert: /etc/blessd/tls/host.pem\n    key: tls/host.key\n    servername: redis.fleet.example\n`, '/etc/blessd/config.yaml').fleet;
  t.deepEqual(c.tls, { ca: '/etc/blessd/tls/ca.pem', cert: '/etc/blessd/tls/host.pem', key: '/etc/blessd/tls/host.key', servername: 'redis.fleet.example' });
  t.deepEqual(parseStoreUrl(c.store!), { kind: 'cluster', nodes: [{ host: '10.0.0.5', port: 7000 }, { host: '10.0.0.6', port: 6379 }], tls: true, username: 'u', password: 'p' });
  t.is(shownUrl(c.store!), 'rediss+cluster://u:***@10.0.0.5:7000,10.0.0.6:6379', 'the log says TLS, never the password');
  t.deepEqual(parseConfig(`${MINIMAL}fleet: { store: "REDISS+CLUSTER://10.0.0.5" }\n`, '/etc/blessd/config.yaml').fleet.tls, { ca: null, cert: null, key: null, servername: null }, 'no fleet.tls: the system CAs');
  t.true((parseStoreUrl('REDISS+CLUSTER://10.0.0.5') as { tls: boolean }).tls, 'the scheme is case-insensitive');
});

const BAD: [string, string, RegExp][] = [
  ['not a URL', 'store: 10.0.0.5:6379', /config\.yaml:7:3: fleet\.store: must be a URL such as redis:\/\/10\.0\.0\.5:6379/],
  ['another scheme', 'store: http://10.0.0.5', /config\.yaml:7:3: fleet\.store: must be a redis:\/\/, rediss:\/\/, redis\+cluster:\/\/ or rediss\+cluster:\/\/ URL \(got http:\/\//],
  ['another cluster scheme', 'store: http+cluster://10.0.0.5', /config\.yaml:7:3: fleet\.store: must be a redis:\/\/, rediss:\/\/, redis\+cluster:\/\/ or rediss\+cluster:\/\/ URL \(got http\+cluster:\/\//],
  ['a TLS cluster with no node', 'store: rediss+cluster://', /config\.yaml:7:3: fleet\.store: names no node: rediss\+cluster:\/\/host/],
  ['fleet.tls for a plain-text store', 'store: redis+cluster://10.0.0.5\n  tls: { ca: /etc/blessd/ca.pem }', /config\.yaml:8:\d+: fleet\.tls: is set but fleet\.store is not a TLS URL: use rediss:\/\/… or rediss\+cluster:\/\/… \(got redis\+cluster:\/\/\)/],
  ['fleet.tls for a plain-text single store', 'store: redis://10.0.0.5\n  tls: { servername: x }', /fleet\.tls: is set but fleet\.store is not a TLS URL/],
  ['a client certificate without its key', 'store: rediss+cluster://10.0.0.5\n  tls: { cert: /etc/blessd/c.pem }', /config\.yaml:8:\d+: fleet\.tls\.key: required with fleet\.tls\.cert/],
  ['a client key without its certificate', 'store: rediss://10.0.0.5\n  tls: { key: /etc/blessd/c.key }', /config\.yaml:8:\d+: fleet\.tls\.cert: required with fleet\.tls\.key/],
  ['an unknown fleet.tls key', 'store: rediss://10.0.0.5\n  tls: { cafile: /etc/blessd/ca.pem }', /fleet\.tls\.cafile: unknown key \(did you mean "ca"\?\)|fleet\.tls\.cafile: unknown key/],
  ['a cluster with a database', 'store: redis+cluster://10.0.0.5,10.0.0.6/2', /config\.yaml:7:3: fleet\.store: a cluster has no database to choose/],
  ['a cluster with a query', 'store: redis+cluster://10.0.0.5?x=1', /config\.yaml:7:3: fleet\.store: must be redis\+cluster:\/\/\[user:password@\]host\[:port\],host\[:port\]… \(or rediss\+cluster:\/\/… for TLS\) with no query/],
  ['a cluster with no node', 'store: redis+cluster://u:p@', /config\.yaml:7:3: fleet\.store: names no node/],
  ['a cluster node with a bad port', 'store: redis+cluster://10.0.0.5:6379,10.0.0.6:70000', /config\.yaml:7:3: fleet\.store: node "10\.0\.0\.6:70000": port must be 1\.\.65535/],
  ['a cluster node that is no host', 'store: redis+cluster://10.0.0.5,,10.0.0.6', /config\.yaml:7:3: fleet\.store: node "" is not host\[:port\]/],
  ['timeout too long', 'timeout: 1m', /config\.yaml:7:3: fleet\.timeout: must be at most 10000ms/],
  ['ttl too short', 'ttl: 10ms', /config\.yaml:7:3: fleet\.ttl: must be at least 1000ms/],
  ['host with a space', 'host: "a b"', /fleet\.host: must be 1 to 64 of/],
  ['unknown key', 'stor: redis://x', /config\.yaml:7:3: fleet\.stor: unknown key/],
];
for (const [what, line, expected] of BAD) {
  test(`bad fleet config: ${what}`, (t) => {
    const issues = problems(`${MINIMAL}fleet:\n  ${line}\n`);
    t.true(issues.some((i) => expected.test(i)), issues.join('\n'));
  });
}

test('the fleet key: refused when others can read it, when short, when missing, when not a file — each a FLEET_KEY_FILE naming the key and the file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'blessd-fleet-key-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'fleet.key');
  const refused = async (message: RegExp) => {
    const err = await t.throwsAsync(loadFleetKey(path), { instanceOf: FleetKeyError, message });
    t.true(isBlessdError(err));
    t.is((err as FleetKeyError).code, 'FLEET_KEY_FILE');
  };
  await refused(new RegExp(`^fleet\\.keyFile ${path}: .*ENOENT.*head -c 32 /dev/urandom`));
  await writeFile(path, randomBytes(32));
  await chmod(path, 0o644);
  await refused(new RegExp(`^fleet\\.keyFile ${path}: mode 644 lets others read it`));
  await chmod(path, 0o600);
  t.is((await loadFleetKey(path)).length, 32);
  await writeFile(path, randomBytes(16));
  await refused(new RegExp(`^fleet\\.keyFile ${path}: 16 bytes, at least 32 needed`));
  await rm(path);
  await mkdir(path);
  await refused(new RegExp(`^fleet\\.keyFile ${path}: not a regular file`));
  await rm(path, { recursive: true });
  await writeFile(path, randomBytes(16), { mode: 0o600 });
  const c = parseConfig(`${MINIMAL}fleet: { store: "redis://127.0.0.1:1", keyFile: ${path} }\n`, '/etc/blessd/config.yaml');
  await t.throwsAsync(openFleet(c.fleet), { message: /16 bytes/ }, 'a daemon with a bad key does not start');
});

test('values: round trip, and every kind of damage refused', (t) => {
  const key = randomBytes(32);
  const k = storeKey('signature', 'abc#0', 'ff'.repeat(32));
  const v = encodeValue(key, k, { answer: 'deny', reason: 'Eicar Test (with spaces)' }, 'host a', 1234);
  const d = decodeValue(key, k, v);
  t.true(d.ok);
  if (d.ok) t.deepEqual(d.verdict, { answer: { answer: 'deny', reason: 'Eicar Test (with spaces)' }, time: 1234, origin: 'host_a' });
  const refused = (raw: string, key2 = key, k2 = k) => {
    const r = decodeValue(key2, k2, raw);
    return r.ok ? 'accepted' : r.why;
  };
  t.regex(refused(v, randomBytes(32)), /bad MAC/, 'another fleet key');
  t.regex(refused(v, key, storeKey('signature', 'abc#1', 'ff'.repeat(32))), /bad MAC/, 'another generation');
  t.regex(refused(v, key, storeKey('signature', 'abc#0', 'ee'.repeat(32))), /bad MAC/, 'another digest');
  t.regex(refused(v, key, storeKey('clamd', 'abc#0', 'ff'.repeat(32))), /bad MAC/, 'another scanner');
  t.regex(refused(v.replace(' deny ', ' allow ')), /bad MAC/, 'the answer changed');
  t.regex(refused(`2${v.slice(1)}`), /format version "2"/);
  t.regex(refused('garbage'), /format version/);
  t.regex(refused(`${v} extra`), /7 fields/);
  t.regex(refused('1 '.repeat(3000)), /at most 4096/);
  t.regex(refused(''), /format version/);
});

test('fleet.tls files: missing, holding no PEM, a key that is not the certificate\'s — each an error naming the key and path', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'blessd-fleet-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const p = (f: string) => join(dir, f);
  const openssl = async (args: string[]) => {
    const r = await runChild('openssl', args, { cwd: dir, timeoutMs: 20_000 });
    if (r.code !== 0) throw new Error(`openssl: ${r.stderr}`);
  };
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  for (const n of ['one', 'two']) await openssl(['req', '-x509', ...newKey, '-keyout', `${n}.key`, '-out', `${n}.pem`, '-days', '2', '-subj', `/CN=${n}`]);
  await writeFile(p('empty.pem'), 'not a certificate\n');
  const none = { ca: null, cert: null, key: null, servername: null };
  const ok = await loadStoreTls({ ...none, ca: p('one.pem'), cert: p('two.pem'), key: p('two.key'), servername: 'redis.example' });
  t.regex(ok.ca!, /BEGIN CERTIFICATE/);
  t.is(ok.servername, 'redis.example');
  const e1 = await t.throwsAsync(loadStoreTls({ ...none, ca: p('missing.pem') }), { message: new RegExp(`^fleet\\.tls\\.ca ${p('missing.pem')}: ENOENT`) });
  t.is((e1 as FleetTlsError).code, 'FLEET_TLS');
  await t.throwsAsync(loadStoreTls({ ...none, ca: p('empty.pem') }), { message: `fleet.tls.ca ${p('empty.pem')}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it` });
  await t.throwsAsync(loadStoreTls({ ...none, cert: p('one.pem'), key: p('one.pem') }), { message: new RegExp(`^fleet\\.tls\\.key ${p('one.pem')}: no PEM private key`) });
  await t.throwsAsync(loadStoreTls({ ...none, cert: p('one.pem'), key: p('two.key') }), { message: new RegExp(`^fleet\\.tls \\(fleet\\.tls\\.cert ${p('one.pem')}, fleet\\.tls\\.key ${p('two.key')}\\): not usable for TLS: `) });

  // The daemon's start reads them: a missing CA stops it, naming the key and the path.
  const key = p('fleet.key');
  await writeFile(key, randomBytes(32), { mode: 0o600 });
  await chmod(key, 0o600);
  const c = parseConfig(`${MINIMAL}fleet: { store: "rediss+cluster://127.0.0.1:1", keyFile: ${key}, tls: { ca: ${p('missing.pem')} } }\n`, '/etc/blessd/config.yaml');
  await t.throwsAsync(openFleet(c.fleet), { message: new RegExp(`fleet\\.tls\\.ca ${p('missing.pem')}: ENOENT`) });
  const on = await openFleet(parseConfig(`${MINIMAL}fleet: { store: "rediss://127.0.0.1:1", keyFile: ${key}, tls: { ca: ${p('one.pem')} } }\n`, '/etc/blessd/config.yaml').fleet);
  t.regex(on!.policy.tls!.ca!, /BEGIN CERTIFICATE/, 'the PEM text rides with the policy to the workers');
  const plain = await openFleet(parseConfig(`${MINIMAL}fleet: { store: "redis://127.0.0.1:1", keyFile: ${key} }\n`, '/etc/blessd/config.yaml').fleet);
  t.is(plain!.policy.tls, undefined);
});
