// The one glob dialect (src/config/glob.ts), as exempt.paths and the allowlist/expected actors see it: the same
// meaning in both places, and never broader than written.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import allowlist from '../actors/allowlist.js';
import expected from '../actors/expected.js';
import { globToRegExp, isExemptPath } from '../src/config/glob.js';
import { ConfigError, parseConfig } from '../src/config/index.js';
import { EICAR } from '../src/daemon/demo.js';
import { tempDir } from './helpers/actor-files.js';
import { runChild } from './helpers/child.js';
import { withDaemon } from './helpers/daemon-harness.js';
import { isRoot } from './helpers/scratch.js';

const m = (g: string, p: string) => globToRegExp(g).test(p);

test('* stays in one segment, ? is one character, everything else is literal', (t) => {
  t.true(m('/usr/bin/*', '/usr/bin/ls'));
  t.false(m('/usr/bin/*', '/usr/bin/x/ls'));
  t.true(m('/srv/*.tmp', '/srv/.hidden.tmp'), 'a leading dot is nothing special');
  t.true(m('/tmp/file?.txt', '/tmp/file1.txt'));
  t.false(m('/tmp/file?.txt', '/tmp/file12.txt'));
  t.false(m('/tmp/file?.txt', '/tmp/file/.txt'));
  t.true(m('/a.b/(c)+[d]{e,f}', '/a.b/(c)+[d]{e,f}'), 'regex, class and brace characters are literal');
  t.false(m('/a.b/[cd]', '/a.b/c'));
  t.false(m('/a.b', '/axb'));
  t.true(m('/odd/*', '/odd/name\nwith newline'));
});

test('** is whole segments: /a/** is everything below /a, never /a itself; /a/**/b includes /a/b', (t) => {
  t.true(m('/srv/**', '/srv/x') && m('/srv/**', '/srv/x/y/z'));
  t.false(m('/srv/**', '/srv'), '/srv/** does not match /srv');
  t.false(m('/srv/**', '/srv/'), 'nor /srv/');
  t.false(m('/srv/**', '/srvx/y'));
  t.true(m('/opt/**/bin/*', '/opt/bin/tool'), '**/ also matches no directory');
  t.true(m('/opt/**/bin/*', '/opt/a/b/bin/tool'));
  t.false(m('/opt/**/bin/*', '/opt/xbin/tool'));
  t.true(m('**/*.log', '/home/u/app.log'));
  t.false(m('**/*.log', '/home/u/app.log/x'));
  t.true(m('**', '/anything/at/all'));
});

test('** inside a name is refused, not widened across directories', (t) => {
  for (const g of ['/srv/x**', '/srv/**.log', '/a/b**/c', '/***', '']) t.throws(() => globToRegExp(g), { message: /glob/ }, g);
});

test('exempt.paths and the allowlist agree, and a bad glob names file:line:col or the option', async (t) => {
  const c = parseConfig(`guards: [{ path: /srv }]\nexempt:\n  paths: ["/srv/**"]\nstack:\n  - actor: default\n    options: { answer: allow }\n`, '/etc/blessd/c.yaml');
  const allow = await allowlist.init({ paths: ['/srv/**'] });
  const exp = await expected.init({ paths: ['/srv/**'] });
  const d = tempDir('blessd-glob-');
  t.teardown(() => d.cleanup());
  const f = d.write('f', 'x');
  for (const path of ['/srv', '/srv/x', '/srv/x/y', '/srvx']) {
    const exempt = isExemptPath(c.exempt.pathMatchers, path);
    t.is((await allow.scan(d.open(f, path))).answer === 'allow', exempt, `allowlist vs exempt.paths on ${path}`);
    t.is((await exp.scan(d.open(f, path))).answer === 'allow', exempt, `expected vs exempt.paths on ${path}`);
  }
  const err = t.throws(() => parseConfig(`guards: [{ path: /srv }]\nexempt:\n  paths: ["/srv/cache**"]\nstack:\n  - actor: default\n    options: { answer: allow }\n`, '/etc/blessd/c.yaml'));
  t.true(err instanceof ConfigError);
  t.regex(err!.message, /c\.yaml:3:\d+: exempt\.paths\[0\]: glob "\/srv\/cache\*\*": "\*\*" must be a whole path segment/);
  await t.throwsAsync(async () => allowlist.init({ paths: ['/ok/*', '/srv/cache**'] }), { message: /allowlist: options\.paths\[1\]: glob/ });
});

const t0 = isRoot() ? test.serial : test.skip;

t0('an exemption of a directory\'s contents does not exempt a file that takes the directory\'s name', async (t) => {
  const h = await withDaemon(t, 'tmpfs', {
    extra: (dir) => `exempt:\n  paths: ["${dir}/cache/**"]\n`,
    prepare: async (dir) => {
      await writeFile(join(dir, 'cache'), EICAR); // not a directory: nothing "below" it was exempted
    },
  });
  t.regex((await runChild('cat', [join(h.dir, 'cache')])).stderr, /Operation not permitted/);
});
