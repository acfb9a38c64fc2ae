/**
 * Legacy HTTP+SSE clients (2024-11-05) on a federated route: the SDK's SSE client against
 * server-everything (HTTP) and server-memory (stdio, per tenant) behind one `/sse` URL; and, against a
 * scripted member, what the member sees when the client's stream ends.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { authPlugins, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { packageBin, startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { textOf } from '../helpers/v2-client.ts';
import { startScriptedMember } from './scripted-member.ts';

describe('legacy HTTP+SSE clients on a federation', () => {
  let everything: RunningUpstream;
  let gw: TestGateway;
  const clients: Client[] = [];
  const legacy = async (tenant: string) => {
    const c = await connectClient(`${gw.url()}/sse`, { transport: 'sse', bearer: await tokenFor(tenant) });
    clients.push(c);
    return c;
  };

  before(async () => {
    everything = await startEverything('streamableHttp');
    gw = await startTestGateway(`
listeners: [{ name: main, host: 127.0.0.1, port: 0 }]
upstreams:
  everything: { url: ${everything.url}/mcp }
  memory: { stdio: { command: ${packageBin('@modelcontextprotocol/server-memory')}, poolKey: '{tenant}', pathEnv: { MEMORY_FILE_PATH: 'data/memory-{tenant}.jsonl' } } }
  ws: { federation: { prefix: always, members: { everything: { tenants: [acme] }, memory: { prefix: mem } } } }
routes:
  - { name: fed-sse, listener: main, path: /sse, upstream: ws, plugins: ${authPlugins()} }
`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await gw?.close();
    await everything?.close();
  });

  test('lists and calls every visible member, with progress, on one stream', async () => {
    const c = await legacy('acme');
    const names = (await c.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('everything__echo') && names.includes('mem__read_graph'), names.join(' '));
    assert.equal(textOf(await c.callTool({ name: 'everything__echo', arguments: { message: 'over SSE' } })), 'Echo: over SSE');
    const progress: number[] = [];
    const done = await c.callTool({ name: 'everything__trigger-long-running-operation', arguments: { duration: 1, steps: 3 } }, undefined, {
      onprogress: (p) => progress.push(p.progress),
    });
    assert.match(textOf(done), /Long running operation completed/);
    // (The SDK may drop the last progress when the result lands in the same read: it handles
    // notifications a tick later than responses.)
    assert.ok(progress.length >= 1 && progress.every((p, i) => p === i + 1), JSON.stringify(progress));
  });

  test('tenants keep their own member sets and their own memory', async () => {
    const acme = await legacy('acme');
    const globex = await legacy('globex');
    await acme.callTool({ name: 'mem__create_entities', arguments: { entities: [{ name: 'Legacy Lou', entityType: 'person', observations: [] }] } });
    const globexNames = (await globex.listTools()).tools.map((t) => t.name);
    assert.ok(!globexNames.some((n) => n.startsWith('everything__')), globexNames.join(' '));
    assert.ok(!textOf(await globex.callTool({ name: 'mem__read_graph', arguments: {} })).includes('Legacy Lou'));
    assert.match(textOf(await acme.callTool({ name: 'mem__read_graph', arguments: {} })), /Legacy Lou/);
  });
});

test('a legacy stream that ends ends its member sessions', async (t) => {
  const a = await startScriptedMember('a', ['alpha']);
  t.after(() => a.close());
  const gw = await startTestGateway(`
listeners: [{ name: main, host: 127.0.0.1, port: 0 }]
upstreams:
  a: { url: ${a.url} }
  ws: { federation: { prefix: always, members: { a: {} } } }
routes:
  - { name: fed-sse, listener: main, path: /sse, upstream: ws, plugins: ${authPlugins()} }
`, { env: GATEWAY_ENV });
  t.after(() => gw.close());
  const c = await connectClient(`${gw.url()}/sse`, { transport: 'sse', bearer: await tokenFor('acme') });
  assert.equal(textOf(await c.callTool({ name: 'a__alpha', arguments: {} })), 'a ran alpha {}');
  await c.close();
  await a.upstream.waitFor(() => a.upstream.requests.some((r) => r.method === 'DELETE' && r.headers['mcp-session-id'] === 'a-session-1'), 20_000, 'a DELETE of the member session');
});
