// The fleet's configuration and its value format: bad input gets an error naming the place, and a value that is
// not exactly what the fleet key signed under exactly this key is refused, whatever else it looks like.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseConfig } from '../src/config/index.js';
import { loadFleetKey } from '../src/fleet/key.js';
import { openFleet } from '../src/fleet/policy.js';
import { shownStoreUrl as shownUrl } from '../src/fleet/store-url.js';
import { parseStoreUrl } from '../src/fleet/store-url.js';
import { decodeValue, encodeValue, storeKey } from '../src/fleet/value.js';

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
  t.deepEqual(on, { store: 'rediss://u:p@10.0.0.5:6380/2', keyFile: '/etc/blessd/keys/fleet.key', timeout: 250, ttl: 86_400_000, host: 'fs-07' });
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
    username: 'u',
    password: 'p@ss',
  });
  t.is(shownUrl(c.store!), 'redis+cluster://u:***@10.0.0.5:7000,node-2.example:6379,[fd00::7]:7002', 'logs never show the password');
  t.deepEqual(parseStoreUrl('redis://10.0.0.5'), { kind: 'single', url: 'redis://10.0.0.5' });
});

const BAD: [string, string, RegExp][] = [
  ['not a URL', 'store: 10.0.0.5:6379', /config\.yaml:7:3: fleet\.store: must be a redis:\/\/, rediss:\/\/ or redis\+cluster:\/\/ URL|config\.yaml:7:3: fleet\.store: must be a URL/],
  ['another scheme', 'store: http://10.0.0.5', /config\.yaml:7:3: fleet\.store: must be a redis:\/\/, rediss:\/\/ or redis\+cluster:\/\/ URL \(got http:\/\//],
  ['another cluster scheme', 'store: http+cluster://10.0.0.5', /config\.yaml:7:3: fleet\.store: must be a redis:\/\/, rediss:\/\/ or redis\+cluster:\/\/ URL \(got http\+cluster:\/\//],
  ['TLS to a cluster', 'store: rediss+cluster://10.0.0.5', /config\.yaml:7:3: fleet\.store: rediss\+cluster:\/\/ \(TLS to a cluster\) is not supported/],
  ['a cluster with a database', 'store: redis+cluster://10.0.0.5,10.0.0.6/2', /config\.yaml:7:3: fleet\.store: a cluster has no database to choose/],
  ['a cluster with a query', 'store: redis+cluster://10.0.0.5?x=1', /config\.yaml:7:3: fleet\.store: must be redis\+cluster:\/\/\[user:password@\]host\[:port\],host\[:port\]… with no query/],
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

test('the fleet key: refused when others can read it, when short, when missing — each naming the file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'blessd-fleet-key-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'fleet.key');
  await t.throwsAsync(loadFleetKey(path), { message: new RegExp(`fleet key file ${path}: .*ENOENT.*head -c 32 /dev/urandom`) });
  await writeFile(path, randomBytes(32));
  await chmod(path, 0o644);
  await t.throwsAsync(loadFleetKey(path), { message: new RegExp(`fleet key file ${path}: mode 644 lets others read it`) });
  await chmod(path, 0o600);
  t.is((await loadFleetKey(path)).length, 32);
  await writeFile(path, randomBytes(16));
  await t.throwsAsync(loadFleetKey(path), { message: /16 bytes, at least 32 needed/ });
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
