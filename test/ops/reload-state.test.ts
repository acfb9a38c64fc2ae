/**
 * What a hot reload keeps and what it picks up, beyond the config file itself:
 * - in-memory rate-limit budgets survive a reload that leaves the route's rate-limit options unchanged,
 *   and start fresh when they change (nothing is retained once no runtime uses it);
 * - a plugin module loaded from a path is loaded anew when its file changes, and saving it is enough to
 *   trigger the reload.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { retainedStateCount } from '../../plugins/rate-limit/retained.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { waitFor } from '../helpers/wait.ts';
import { post } from './support/raw-mcp.ts';

let everything: RunningUpstream;
before(async () => {
  everything = await startEverything('streamableHttp');
});
after(async () => {
  await everything?.close();
});

const yaml = (opts: { plugins: string; heartbeat?: string }) => `
listeners: [{ name: main, port: 0 }]
upstreams:
  everything: { url: ${everything.url}/mcp }
routes:
  - name: limited
    listener: main
    path: /mcp
    upstream: everything
    heartbeat: ${opts.heartbeat ?? '15s'}
    plugins: ${opts.plugins}
log: { level: info, pretty: false }
`;

describe('state across hot reloads', () => {
  test('an exhausted rate-limit budget stays exhausted across an unrelated change, and starts fresh when the limit changes', async () => {
    const limit = (points: number) => `[{ type: rate-limit, key: ip, limits: [{ name: calls, points: ${points}, duration: 1h }] }]`;
    const gw = await startTestGateway(yaml({ plugins: limit(2) }));
    const file = path.join(gw.dir, 'gateway.yaml');
    const url = `${gw.url()}/mcp`;
    const ping = async () => (await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' })).status;
    try {
      assert.notEqual(await ping(), 429);
      assert.notEqual(await ping(), 429);
      assert.equal(await ping(), 429, 'precondition: the budget of 2 is spent');

      // Saving the file with another route setting, and a plain reload(): both keep the budget.
      await writeFile(file, yaml({ plugins: limit(2), heartbeat: '5s' }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      assert.equal(gw.gw.runtime().loaded.config.routes[0].heartbeat, 5000);
      assert.equal(await ping(), 429, 'still limited after an unrelated change');
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      assert.equal(await ping(), 429, 'still limited after reload()');

      // A new limit is a new budget.
      await writeFile(file, yaml({ plugins: limit(3), heartbeat: '5s' }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      assert.notEqual(await ping(), 429, 'a changed limit starts fresh');
      // Once the old runtimes have closed, only the state in use is held.
      await waitFor(() => retainedStateCount() === 1, 'the old budget to be released');
    } finally {
      await gw.close();
    }
    assert.equal(retainedStateCount(), 0, 'a closed gateway holds no rate-limit state');
  });

  test('a plugin module changed on disk is loaded anew, and saving it (or creating it) reloads the gateway', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-plugin-'));
    await mkdir(path.join(dir, 'plugins'));
    const pluginFile = path.join(dir, 'plugins', 'stamp.ts');
    // A plugin definition needs no import: an object with type, a config that has safeParse, and create.
    const stampPlugin = (version: string) => `
export default {
  type: 'stamp',
  config: { safeParse: (value: unknown) => ({ success: true, data: value }) },
  create: () => ({ name: 'stamp', serves: { '/stamp': () => ({ status: 200, body: '${version}' }) } }),
};
`;
    const started = await startTestGateway(yaml({ plugins: '[]' }), { dir });
    const stamp = async () => (await fetch(`${started.url()}/stamp`)).text();
    try {
      // The config names the module before it exists: that reload fails, and writing the module retries it.
      await writeFile(path.join(dir, 'gateway.yaml'), yaml({ plugins: '[{ type: ./plugins/stamp.ts }]' }));
      await waitFor(() => started.logs().some((l) => l.msg === 'configuration reload failed; the previous configuration keeps serving'), 'the reload naming a missing module to fail');
      await writeFile(pluginFile, stampPlugin('v1'));
      await waitFor(async () => (await stamp()) === 'v1', 'the new plugin module to serve');
      // Only the plugin file changes; the watcher reloads by itself and the new code serves.
      await writeFile(pluginFile, stampPlugin('v2'));
      await waitFor(async () => (await stamp()) === 'v2', 'the changed plugin to serve');
      assert.ok(started.logs().some((l) => l.msg === 'configuration reloaded'));
      // reload() with the file unchanged keeps serving the same version.
      assert.deepEqual(await started.gw.reload(), { ok: true });
      assert.equal(await stamp(), 'v2');
    } finally {
      await started.close();
    }
  });
});
