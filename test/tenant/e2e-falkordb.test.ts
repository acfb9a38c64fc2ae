/**
 * Tenant isolation against the real @falkordb/mcpserver (Streamable HTTP) on the local Redis.
 *
 * Plain Redis has no GRAPH module, so every graph command fails upstream with an error that quotes the
 * graph name it received. The wire-recorder plugin (last on the route, so it sees requests after the
 * rewrite and responses before it) shows that name was prefixed; the client sees its own name only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startFalkorMcp, type RunningUpstream } from '../helpers/upstreams.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { wire } from '../fixtures/tenant/wire-recorder.ts';
import { AUTH_PLUGINS, GATEWAY_ENV, WIRE_RECORDER, textOf, tokenFor } from './e2e-support.ts';
import { redisAvailable } from './fixtures.ts';

const redis = await redisAvailable();

describe('tenant isolation in front of @falkordb/mcpserver', { skip: redis.ok ? false : redis.reason }, () => {
  let upstream: RunningUpstream;
  let gw: TestGateway;
  const clients: Client[] = [];

  async function client(tenant: string): Promise<Client> {
    const c = await connectClient(gw.url() + '/graph', { bearer: await tokenFor(tenant) });
    clients.push(c);
    return c;
  }

  /** Where on the wire the last rewritten request naming `graphName` went upstream (-1: never). */
  function lastRequestNaming(graphName: string): number {
    return wire.findLastIndex((w) => w.direction === 'request' && JSON.stringify(w.message).includes(`"graphName":"${graphName}"`));
  }

  /** What the upstream answered to the request at wire index `at`, before the gateway rewrote it. */
  function upstreamAnswer(at: number): string {
    // Every SDK client numbers its requests from 0, so the answer is the next response with that id.
    const id = (wire[at].message as { id?: unknown }).id;
    const hit = wire.slice(at + 1).find((w) => w.direction === 'response' && (w.message as { id?: unknown }).id === id);
    return JSON.stringify(hit?.message ?? null);
  }

  before(async () => {
    upstream = await startFalkorMcp();
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  falkordb: { url: ${upstream.url}/mcp }
routes:
  - listener: main
    path: /graph
    upstream: falkordb
    plugins:${AUTH_PLUGINS}
      - { type: graph-rewrite }
      - { type: ${WIRE_RECORDER} }
`, { env: GATEWAY_ENV });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await gw?.close();
    await upstream?.close();
  });

  test('two tenants query the same graph name: the upstream receives each tenant\'s prefixed name', async () => {
    const acme = await client('acme');
    const globex = await client('globex');
    const a = await acme.callTool({ name: 'query_graph', arguments: { graphName: 'social', query: 'MATCH (n) RETURN n' } });
    const g = await globex.callTool({ name: 'query_graph_readonly', arguments: { graphName: 'social', query: 'MATCH (n) RETURN n' } });

    // Upstream side: the graph commands carried the prefixed names, and the upstream says so.
    const aAt = lastRequestNaming('acme_social');
    const gAt = lastRequestNaming('globex_social');
    assert.ok(aAt >= 0 && gAt >= 0, 'both prefixed names went upstream');
    assert.equal(lastRequestNaming('social'), -1, 'the bare name never went upstream');
    assert.match(upstreamAnswer(aAt), /on graph 'acme_social'/);
    assert.match(upstreamAnswer(gAt), /on graph 'globex_social'/);

    // Client side: an error naming the client's own graph, nothing else.
    for (const [r, other] of [[a, 'globex'], [g, 'acme']] as const) {
      assert.equal(r.isError, true);
      const text = textOf(r);
      assert.match(text, /'social'/);
      assert.match(text, /GRAPH\./, 'it is the upstream\'s graph-command error');
      assert.ok(!text.includes('_social'), text);
      assert.ok(!text.includes(other), text);
    }
  });

  test('every default graph tool is rewritten', async () => {
    const acme = await client('acme');
    const calls: Array<[string, Record<string, unknown>]> = [
      ['get_graph_schema', { graphName: 'g1' }],
      ['get_node_schema', { graphName: 'g2', label: 'Person' }],
      ['get_relationship_schema', { graphName: 'g3', relationshipType: 'KNOWS' }],
      ['delete_graph', { graphName: 'g4', confirmDelete: true }],
    ];
    for (const [name, args] of calls) {
      const r = await acme.callTool({ name, arguments: args });
      assert.equal(r.isError, true, name);
      assert.ok(lastRequestNaming(`acme_${args.graphName}`) >= 0, name);
      assert.ok(!textOf(r).includes('acme_'), `${name}: ${textOf(r)}`);
    }
  });

  test('a failed listing is withheld rather than shown (its text could name other tenants\' graphs)', async () => {
    const acme = await client('acme');
    const list = await acme.callTool({ name: 'list_graphs', arguments: {} });
    assert.equal(list.isError, true);
    assert.match(textOf(list), /withheld by the gateway/);
    const resource = await acme.readResource({ uri: 'graph://listing' }).then(() => 'resolved', (e: Error) => e.message);
    assert.match(resource, /withheld by the gateway/);
  });

  test('upstream log lines (which this server sends across sessions) never reach a client', async () => {
    const acme = await client('acme');
    const globex = await client('globex');
    const seen: string[] = [];
    acme.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { seen.push(JSON.stringify(n.params)); });
    await globex.callTool({ name: 'query_graph', arguments: { graphName: 'secret-plans', query: 'MATCH (n) RETURN n' } });
    await sleep(300);
    // The upstream did send them (the recorder saw them before graph-rewrite dropped them).
    const sent = wire.filter((w) => (w.message as { method?: string }).method === 'notifications/message');
    assert.ok(sent.some((w) => JSON.stringify(w.message).includes('globex_secret-plans')), 'the upstream logged the query');
    assert.deepEqual(seen, []);
    assert.ok(!gw.logText().includes(`"${GATEWAY_ENV.JWT_SECRET}"`));
  });
});
