/**
 * Tenant isolation end to end: the official SDK client (and raw fetch where HTTP details matter) →
 * gateway (token + jwt + tool-policy + rate-limit + graph-rewrite) → a purpose-built graph server that
 * holds the graphs of several tenants and streams its answers over SSE.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CallToolResultSchema, LoggingMessageNotificationSchema, McpError } from '@modelcontextprotocol/sdk/types.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startGraphUpstream, type GraphUpstream } from '../helpers/graph-upstream.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { wire } from '../fixtures/tenant/wire-recorder.ts';
import {
  AUTH_PLUGINS, GATEWAY_ENV, WIRE_RECORDER, callMessage, openRawSession, post, textOf, tokenFor, type RefusalBody,
} from './e2e-support.ts';

const GRAPHS = {
  acme_social: ['alice', 'bob'],
  acme_sales: ['deal-1'],
  globex_social: ['carol'],
  globex_secret: ['launch-plan'],
};

describe('tenant isolation through the gateway (purpose-built graph upstream)', () => {
  let upstream: GraphUpstream;
  /** The same graphs served with JSON answers instead of SSE. */
  let jsonUpstream: GraphUpstream;
  let gw: TestGateway;
  const clients: Client[] = [];

  async function client(tenant: string, route = '/mcp', scope?: string): Promise<Client> {
    const c = await connectClient(gw.url() + route, { bearer: await tokenFor(tenant, { scope }) });
    clients.push(c);
    return c;
  }

  before(async () => {
    upstream = await startGraphUpstream({ graphs: GRAPHS });
    jsonUpstream = await startGraphUpstream({ graphs: GRAPHS, json: true });
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  graphs: { url: ${upstream.url} }
  json-graphs: { url: ${jsonUpstream.url} }
routes:
  - listener: main
    path: /mcp
    upstream: graphs
    plugins:${AUTH_PLUGINS}
      - type: tool-policy
        tenants: { globex: { deny: [delete_graph] } }
      - { type: graph-rewrite, tools: [query_graph, delete_graph] }
      - { type: ${WIRE_RECORDER} }
  - listener: main
    path: /filtered
    upstream: graphs
    plugins:${AUTH_PLUGINS}
      - { type: graph-rewrite, tools: [query_graph, delete_graph], logNotifications: filter }
  - listener: main
    path: /limited
    upstream: graphs
    plugins:${AUTH_PLUGINS}
      - type: rate-limit
        limits:
          - { name: queries, points: 20, duration: 1m, match: { method: tools/call, tools: [query_graph] } }
      - { type: graph-rewrite, tools: [query_graph, delete_graph] }
  - listener: main
    path: /capped
    upstream: graphs
    plugins:${AUTH_PLUGINS}
      - { type: rate-limit, limits: [], maxStreams: 1, maxInflightToolCalls: 2 }
      - { type: graph-rewrite, tools: [query_graph, delete_graph] }
  - listener: main
    path: /json/mcp
    upstream: json-graphs
    plugins:${AUTH_PLUGINS}
      - { type: graph-rewrite, tools: [query_graph, delete_graph] }
  - listener: main
    path: /json/limited
    upstream: json-graphs
    plugins:${AUTH_PLUGINS}
      - type: rate-limit
        limits:
          - { name: queries, points: 20, duration: 1m, match: { method: tools/call, tools: [query_graph] } }
      - { type: graph-rewrite, tools: [query_graph, delete_graph] }
`, { env: GATEWAY_ENV });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
    await gw?.close();
    await upstream?.close();
    await jsonUpstream?.close();
  });

  test('listings show each tenant only its own graphs, unprefixed (tool and resource)', async () => {
    const acme = await client('acme');
    const globex = await client('globex');
    assert.equal(textOf(await acme.callTool({ name: 'list_graphs', arguments: {} })), 'social\nsales');
    assert.equal(textOf(await globex.callTool({ name: 'list_graphs', arguments: {} })), 'social\nsecret');
    assert.equal(textOf(await client('initech').then((c) => c.callTool({ name: 'list_graphs', arguments: {} }))), '');
    const listing = await acme.readResource({ uri: 'graph://listing' });
    assert.deepEqual(listing.contents, [{ uri: 'graph://listing', text: '- social\n- sales' }]);
  });

  test('two tenants, same graph name: each reaches only its own graph, and sees only its own name', async () => {
    const acme = await client('acme');
    const globex = await client('globex');
    const a = await acme.callTool({ name: 'query_graph', arguments: { graphName: 'social', query: 'MATCH' } });
    const g = await globex.callTool({ name: 'query_graph', arguments: { graphName: 'social', query: 'MATCH' } });
    assert.deepEqual(JSON.parse(textOf(a)), { graph: 'social', nodes: ['alice', 'bob'] });
    assert.deepEqual(JSON.parse(textOf(g)), { graph: 'social', nodes: ['carol'] });
    // Writes land in the writer's graph only.
    await acme.callTool({ name: 'query_graph', arguments: { graphName: 'social', query: 'CREATE dave' } });
    assert.deepEqual(upstream.graphs.get('acme_social'), ['alice', 'bob', 'dave']);
    assert.deepEqual(upstream.graphs.get('globex_social'), ['carol']);
    // What crossed the wire to the upstream was prefixed (recorded after every rewrite).
    const sent = wire.filter((w) => w.direction === 'request').map((w) => JSON.stringify(w.message));
    assert.ok(sent.some((s) => s.includes('"graphName":"acme_social"')));
    assert.ok(sent.some((s) => s.includes('"graphName":"globex_social"')));
    assert.ok(!sent.some((s) => s.includes('"graphName":"social"')), 'no unprefixed name reached the upstream');
  });

  test('naming another tenant\'s graph only reaches a graph of one\'s own; errors echo the caller\'s name', async () => {
    const acme = await client('acme');
    const r = await acme.callTool({ name: 'query_graph', arguments: { graphName: 'globex_secret', query: 'MATCH' } });
    assert.equal(r.isError, true);
    assert.equal(textOf(r), `Graph 'globex_secret' not found`);
    assert.equal(upstream.received.at(-1), 'acme_globex_secret');
    const d = await acme.callTool({ name: 'delete_graph', arguments: { graphName: 'nope' } });
    assert.equal(textOf(d), `Graph 'nope' not found`);
    assert.deepEqual(upstream.graphs.get('globex_secret'), ['launch-plan']);
  });

  test('a missing or non-string graph name is refused before the upstream (invalid params)', async () => {
    const acme = await client('acme');
    const before = upstream.received.length;
    for (const args of [{ query: 'MATCH' }, { graphName: 7, query: 'MATCH' }]) {
      const err = await acme.callTool({ name: 'query_graph', arguments: args }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof McpError, String(err));
      assert.equal(err.code, -32602);
      assert.equal((err.data as { code: string }).code, 'GW_ERR_GRAPH_NAME_INVALID');
    }
    assert.equal(upstream.received.length, before);
  });

  test('streamed answers: progress passes, upstream log lines from other sessions never arrive', async () => {
    const acme = await client('acme');
    const globex = await client('globex');
    const acmeLogs: string[] = [];
    acme.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { acmeLogs.push(JSON.stringify(n.params)); });
    const globexLogs: string[] = [];
    globex.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { globexLogs.push(JSON.stringify(n.params)); });
    const progress: number[] = [];
    const r = await globex.callTool(
      { name: 'query_graph', arguments: { graphName: 'secret', query: 'MATCH' } },
      CallToolResultSchema,
      { onprogress: (p) => progress.push(p.progress) },
    );
    assert.deepEqual(JSON.parse(textOf(r)), { graph: 'secret', nodes: ['launch-plan'] });
    assert.deepEqual(progress, [1]);
    await sleep(300);
    assert.deepEqual(acmeLogs, [], 'drop (default): no upstream log line reaches a client');
    assert.deepEqual(globexLogs, []);
  });

  test('logNotifications: filter keeps a tenant\'s own log lines (unprefixed) and no one else\'s', async () => {
    const acme = await client('acme', '/filtered');
    const globex = await client('globex', '/filtered');
    const acmeLogs: string[] = [];
    acme.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { acmeLogs.push(String(n.params.data)); });
    await globex.callTool({ name: 'query_graph', arguments: { graphName: 'secret', query: 'MATCH' } });
    await acme.callTool({ name: 'query_graph', arguments: { graphName: 'sales', query: 'MATCH' } });
    const deadline = Date.now() + 2000;
    while (acmeLogs.length === 0 && Date.now() < deadline) await sleep(20);
    assert.deepEqual(acmeLogs, ['Query started | {"graphName":"sales","query":"MATCH"}']);
  });

  for (const mode of ['json', 'sse'] as const) {
    const prefix = mode === 'json' ? '/json' : '';

    test(`batches cannot bypass rewriting: every element rewritten, every answer filtered (${mode})`, async () => {
      const s = await openRawSession(gw.url() + prefix + '/mcp', await tokenFor('acme'));
      const batch = [
        callMessage('query_graph', { graphName: 'social', query: 'MATCH' }),
        callMessage('query_graph', { query: 'MATCH' }),
        callMessage('list_graphs'),
        callMessage('query_graph', { graphName: 'globex_social', query: 'MATCH' }),
      ];
      const answer = await post(s, batch);
      assert.equal(answer.status, 200);
      const byId = new Map(answer.messages.filter((m) => m.id !== undefined).map((m) => [m.id, m]));
      assert.equal(byId.size, 4);
      assert.deepEqual(JSON.parse(textOf(byId.get(batch[0].id))).graph, 'social');
      assert.equal(byId.get(batch[1].id)?.error?.data?.code, 'GW_ERR_GRAPH_NAME_INVALID');
      assert.equal(byId.get(batch[2].id)?.error, undefined);
      assert.ok(!textOf(byId.get(batch[2].id)).split('\n').some((n) => n.startsWith('globex') || n.startsWith('acme_')));
      assert.equal(textOf(byId.get(batch[3].id)), `Graph 'globex_social' not found`);
      assert.ok(!JSON.stringify(answer.messages).includes('carol'), 'globex data never reaches acme');
    });

    test(`rate limit: a batch cannot buy more calls than the budget (${mode})`, async () => {
      const s = await openRawSession(gw.url() + prefix + '/limited', await tokenFor(`batcher-${mode}`));
      const batch = Array.from({ length: 25 }, () => callMessage('query_graph', { graphName: 'g', query: 'MATCH' }));
      const answer = await post(s, batch);
      assert.equal(answer.status, 200);
      const answers = answer.messages.filter((m) => m.id !== undefined);
      assert.equal(answers.length, 25);
      const limited = answers.filter((m) => m.error?.data?.code === 'GW_ERR_RATE_LIMITED');
      assert.equal(limited.length, 5);
      assert.equal(limited[0].error.code, -32010);
      assert.ok(limited[0].error.data.retryAfterMs > 0);
    });
  }

  test('tool policy: a denied tool is hidden from tools/list and refused; others keep it', async () => {
    const globex = await client('globex');
    const acme = await client('acme');
    assert.ok(!(await globex.listTools()).tools.some((t) => t.name === 'delete_graph'));
    assert.ok((await acme.listTools()).tools.some((t) => t.name === 'delete_graph'));
    const err = await globex.callTool({ name: 'delete_graph', arguments: { graphName: 'social' } }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof McpError);
    assert.equal((err.data as { code: string }).code, 'GW_ERR_TOOL_DENIED');
    assert.deepEqual(upstream.graphs.get('globex_social'), ['carol']);
    // acme deletes its own "sales"; globex's graphs are untouched.
    assert.equal(textOf(await acme.callTool({ name: 'delete_graph', arguments: { graphName: 'sales' } })), 'Graph sales deleted');
    assert.equal(upstream.graphs.has('acme_sales'), false);
    assert.deepEqual([...upstream.graphs.keys()].filter((k) => k.startsWith('globex_')), ['globex_social', 'globex_secret']);
  });

  test('rate limit: exactly 20 of 50 concurrent calls pass; refusals are 429 with Retry-After and RateLimit headers', async () => {
    const s = await openRawSession(gw.url() + '/limited', await tokenFor('burst'));
    const answers = await Promise.all(Array.from({ length: 50 }, () => post(s, callMessage('query_graph', { graphName: 'g', query: 'MATCH' }))));
    const ok = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 429);
    assert.equal(ok.length, 20);
    assert.equal(refused.length, 30);
    const r = refused[0];
    assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
    assert.equal(r.headers.get('ratelimit-policy'), '"queries";q=20;w=60');
    assert.match(r.headers.get('ratelimit') ?? '', /^"queries";r=0;t=\d+$/);
    assert.equal(r.messages[0].error.code, -32010);
    assert.equal(r.messages[0].error.data.code, 'GW_ERR_RATE_LIMITED');
    assert.ok(r.messages[0].error.data.retryAfterMs > 0);
    assert.equal(r.messages[0].error.data.httpHeaders, undefined, 'HTTP details stay out of the JSON-RPC error');
    assert.match(ok[0].headers.get('ratelimit') ?? '', /^"queries";r=\d+;t=\d+$/);
    // Another tenant has its own budget; tools/list is not limited.
    const other = await openRawSession(gw.url() + '/limited', await tokenFor('calm'));
    assert.equal((await post(other, callMessage('query_graph', { graphName: 'g', query: 'MATCH' }))).status, 200);
    assert.equal((await post(s, { jsonrpc: '2.0', id: 1, method: 'tools/list' })).status, 200);
  });

  test('concurrency caps: one SSE stream per tenant; two tool calls in flight', async () => {
    const token = await tokenFor('streamer');
    const [s1, s2] = await Promise.all([openRawSession(gw.url() + '/capped', token), openRawSession(gw.url() + '/capped', token)]);
    const openStream = (s: typeof s1, signal: AbortSignal) => fetch(s.url, {
      headers: { authorization: `Bearer ${s.token}`, accept: 'text/event-stream', 'mcp-session-id': s.sessionId, 'mcp-protocol-version': '2025-06-18' },
      signal,
    });
    const first = new AbortController();
    const r1 = await openStream(s1, first.signal);
    assert.equal(r1.status, 200);
    const second = new AbortController();
    const r2 = await openStream(s2, second.signal);
    assert.equal(r2.status, 429);
    assert.equal(((await r2.json()) as RefusalBody).error.data.code, 'GW_ERR_TOO_MANY_STREAMS');
    first.abort();
    // The lease is returned when the gateway sees the stream end.
    let r3: Response | undefined;
    // (Up to 20 s: on a loaded machine the gateway may see the abort late.)
    for (let i = 0; i < 400 && r3?.status !== 200; i++) {
      await sleep(50);
      r3 = await openStream(s2, second.signal);
      if (r3.status !== 200) await r3.text();
    }
    assert.equal(r3?.status, 200);
    second.abort();

    const busy = await openRawSession(gw.url() + '/capped', await tokenFor('busy'));
    const calls = await Promise.all(Array.from({ length: 4 }, () => post(busy, callMessage('query_graph', { graphName: 'g', query: 'SLEEP 400' }))));
    assert.deepEqual(calls.map((c) => c.status).sort(), [200, 200, 429, 429]);
    assert.ok(calls.filter((c) => c.status === 429).every((c) => c.messages[0].error.data.code === 'GW_ERR_TOO_MANY_INFLIGHT'));
    assert.equal((await post(busy, callMessage('query_graph', { graphName: 'g', query: 'MATCH' }))).status, 200, 'released when the calls end');
  });
});
