// noticesLost counts what every subscriber lost, also after it disconnected (issue 10.9).
import test from 'ava';
import { join } from 'node:path';
import { runChild } from './helpers/child.js';
import { lineChild, PYTHON, withNotify } from './helpers/notify-harness.js';
import { isRoot } from './helpers/scratch.js';
import { waitFor } from './helpers/wait.js';

const t0 = isRoot() ? test.serial : test.skip;

// Subscribes to everything, then never reads again: the daemon's queue for it overflows.
const deaf = `import json, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.sendall((json.dumps({"v": 1, "id": 1, "op": "subscribe", "verdicts": True}) + "\\n").encode())
print("subscribed", flush=True)
time.sleep(600)`;

t0('losses of a subscriber that disconnected stay in noticesLost', async (t) => {
  const h = await withNotify(t, 'tmpfs', { limits: { subscriberQueue: 5 } });
  const sub = lineChild(t, PYTHON, ['-c', deaf, h.socket]);
  await sub.waitFor((l) => l === 'subscribed');
  const c = await h.client();
  await waitFor('the deaf subscriber to be subscribed', async () => ((await c.request('status')) as any).queues.subscribers.length === 1);
  // Many changes, each a dirty and a verdict notice, until the deaf subscriber's queue has overflowed.
  let round = 0;
  await waitFor(
    'the deaf subscriber to lose notices',
    async () => {
      await runChild('sh', ['-c', `cd ${h.dir} && for i in $(seq 200); do echo ${round} > f$i; done`]);
      round++;
      const s = (await c.request('status')) as any;
      return (s.queues.subscribers[0]?.lost ?? 0) > 0;
    },
    60_000,
  );
  const lost = ((await c.request('stats')) as any).stats.notify.noticesLost;
  t.true(lost > 0);
  sub.kill();
  await waitFor('the subscriber to be gone', async () => ((await c.request('status')) as any).queues.subscribers.length === 0);
  const after = ((await c.request('stats')) as any).stats.notify.noticesLost;
  t.true(after >= lost, `noticesLost ${lost} before the disconnect, ${after} after`);
});
