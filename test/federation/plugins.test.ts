/**
 * The route's plugins on a federated endpoint work by the names the client sees: graph-rewrite with the
 * FalkorDB member's prefixed tools prefixes the tenant's graph names on their way to the real
 * @falkordb/mcpserver, tool-policy hides and refuses another member's tool, and neither touches the
 * other members. The wire recorder (last on the route) shows messages as they go to the federation.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { startEverything, startFalkorMcp, type RunningUpstream } from '../helpers/upstreams.ts';
import { wire } from '../fixtures/tenant/wire-recorder.ts';
import { AUTH_PLUGINS, GATEWAY_ENV, WIRE_RECORDER, textOf, tokenFor } from '../tenant/e2e-support.ts';
import { redisAvailable } from '../tenant/fixtures.ts';

const redis = await redisAvailable();

describe('plugins on a federated route', { skip: redis.ok ? false : redis.reason }, () => {
  let falkor: RunningUpstream;
  let everything: RunningUpstream;
  let gw: TestGateway;
  const clients: Client[] = [];

  async function client(tenant: string): Promise<Client> {
    const c = await connectClient(`${gw.url()}/mcp`, { bearer: await tokenFor(tenant) });
    clients.push(c);
    return c;
  }

  before(async () => {
    [falkor, everything] = await Promise.all([startFalkorMcp({ apiKey: 'falkor-key' }), startEverything('streamableHttp')]);
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  graphs: { url: ${falkor.url}/mcp, headers: { authorization: "Bearer falkor-key" } }
  everything: { url: ${everything.url}/mcp }
  workspace:
    federation:
      prefix: always
      members: { graphs: {}, everything: { prefix: ev } }
routes:
  - listener: main
    path: /mcp
    upstream: workspace
    plugins:${AUTH_PLUGINS}
      - { type: tool-policy, default: { deny: ["ev__get-env"] } }
      - type: graph-rewrite
        tools: [graphs__query_graph, graphs__query_graph_readonly]
        listings: [{ tool: graphs__list_graphs }]
      - { type: ${WIRE_RECORDER} }
`, { env: GATEWAY_ENV });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await gw?.close();
    await Promise.all([falkor?.close(), everything?.close()]);
  });

  test('graph-rewrite prefixes each tenant\'s graph on the FalkorDB member\'s prefixed tool', async () => {
    for (const tenant of ['acme', 'globex']) {
      const c = await client(tenant);
      const r = await c.callTool({ name: 'graphs__query_graph', arguments: { graphName: 'social', query: 'MATCH (n) RETURN n' } });
      const sent = wire.filter((w) => w.direction === 'request' && JSON.stringify(w.message).includes('graphs__query_graph'));
      assert.ok(sent.some((w) => JSON.stringify(w.message).includes(`"graphName":"${tenant}_social"`)), `${tenant}_social went to the federation`);
      // FalkorDB (plain Redis here) fails the command, naming the graph it got; the client sees its own name.
      const answered = wire.filter((w) => w.direction === 'response').map((w) => JSON.stringify(w.message));
      assert.ok(answered.some((text) => text.includes(`${tenant}_social`)), 'the member answered about the prefixed graph');
      assert.ok(!textOf(r).includes(`${tenant}_`), textOf(r));
      assert.match(textOf(r), /social/);
    }
  });

  test('tool-policy hides and refuses a member\'s tool by its prefixed name, and leaves the rest', async () => {
    const c = await client('acme');
    const names = (await c.listTools()).tools.map((t) => t.name);
    assert.ok(!names.includes('ev__get-env'));
    assert.ok(names.includes('ev__echo') && names.includes('graphs__list_graphs'));
    await assert.rejects(c.callTool({ name: 'ev__get-env', arguments: {} }), /not available to this caller/);
    assert.equal(textOf(await c.callTool({ name: 'ev__echo', arguments: { message: 'hi' } })), 'Echo: hi');
  });
});
