// One error base: every layer's errors are BlessdErrors with a stable code and their own class name.
import test from 'ava';
import { BlessdError, isBlessdError } from '../src/errors.js';
import { ConfigError } from '../src/config/errors.js';
import { GlobError } from '../src/config/glob.js';
import { ProtocolError } from '../src/notify/protocol.js';
import { ClientError } from '../src/notify/client.js';
import { MustPassError } from '../src/policy/must-pass.js';
import { UsageError } from '../src/cli/command.js';
import { PoolError } from '../src/pool/errors.js';
import { TagError } from '../src/tags/errors.js';
import { ActorError } from '../actors/common/errors.js';
import { ClamdError } from '../actors/clamd/session.js';
import { parseConfig } from '../src/config/index.js';
import { FleetKeyError } from '../src/fleet/key.js';
import { FleetTlsError } from '../src/fleet/tls.js';
import { FarmError } from '../src/farm/errors.js';

test('each layer error is a BlessdError with its code, its name and its cause', (t) => {
  const cause = new Error('ENOENT');
  const all: [BlessdError, string, string][] = [
    [new ConfigError('c.yaml', ['c.yaml:1:1: x: bad']), 'BLESSD_CONFIG', 'ConfigError'],
    [new GlobError('a[', 'unclosed ['), 'BLESSD_GLOB', 'GlobError'],
    [new ProtocolError('BAD_JSON', 'x'), 'BAD_JSON', 'ProtocolError'],
    [new ClientError('TIMEOUT', 'x'), 'TIMEOUT', 'ClientError'],
    [new MustPassError('/etc/blessd/must-pass', 'missing'), 'BLESSD_MUSTPASS', 'MustPassError'],
    [new UsageError('x'), 'USAGE', 'UsageError'],
    [new PoolError('POOL_LOAD', 'x', { cause }), 'POOL_LOAD', 'PoolError'],
    [new TagError('TAG_KEY_FILE', 'x', cause), 'TAG_KEY_FILE', 'TagError'],
    [new ActorError('ACTOR_DATABASE', 'x', { cause }), 'ACTOR_DATABASE', 'ActorError'],
    [new ClamdError('CLAMD_TIMEOUT', 'x'), 'CLAMD_TIMEOUT', 'ClamdError'],
    [new FleetKeyError('x', cause), 'FLEET_KEY_FILE', 'FleetKeyError'],
    [new FleetTlsError('x', cause), 'FLEET_TLS', 'FleetTlsError'],
    [new FarmError('x', cause), 'BLESSD_FARM', 'FarmError'],
  ];
  for (const [err, code, name] of all) {
    t.true(isBlessdError(err), name);
    t.true(err instanceof Error);
    t.is(err.code, code);
    t.is(err.name, name);
  }
  t.is(all[6]![0].cause, cause);
  t.is(all[7]![0].cause, cause);
  for (const i of [10, 11, 12]) t.is(all[i]![0].cause, cause);
  t.false('cause' in all[0]![0], 'no cause key when there is none');
  t.false(isBlessdError(new Error('plain')));
});

test('a real configuration failure carries the code and every issue', (t) => {
  const err = t.throws(() => parseConfig('guards: []\nstack: []\n', 'c.yaml'));
  t.true(isBlessdError(err));
  t.is((err as ConfigError).code, 'BLESSD_CONFIG');
  t.true((err as ConfigError).issues.length >= 2);
});
