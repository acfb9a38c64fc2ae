/**
 * A 2026-07-28 client (SDK v2, pinned) through the full pipeline in front of an SDK v2 server: every
 * operation gives what it gives directly, the tenant boundary holds for what 2026 added (mirror
 * headers, multi round-trip state, elicitation answers), and what the spec asks of a body-reading
 * intermediary is enforced before any plugin runs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { connectV1, connectV2, textOf } from '../helpers/v2-client.ts';
import { startV2Server, type V2Server } from '../helpers/v2-server.ts';
import { AUTH_PLUGINS } from '../tenant/e2e-support.ts';

const ACCEPT = 'application/json, text/event-stream';
const V = '2026-07-28';
const meta = { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } }, 'io.modelcontextprotocol/clientInfo': { name: 'raw-test', version: '1' } };

type Rpc = { id?: unknown; result?: Record<string, any>; error?: { code: number; message: string; data?: { code?: string } } };

describe('2026 client, full pipeline, SDK v2 server', () => {
  let up: V2Server;
  let gw: TestGateway;
  let acme: string;
  let globex: string;

  before(async () => {
    up = await startV2Server();
    acme = await tokenFor('acme');
    globex = await tokenFor('globex');
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  graphs: { url: ${up.url} }
routes:
  - listener: main
    path: /mcp
    upstream: graphs
    plugins:${AUTH_PLUGINS}
      - { type: rate-limit, key: tenant, limits: [{ name: all, points: 1000, duration: 1m }] }
      - { type: tool-policy, default: { allow: ['*'], deny: [delete_graph] } }
      - { type: graph-rewrite, tools: [query_graph, pick_graph], answerFields: [graphName, graph] }
      - { type: audit, destination: log }
`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  /** One raw 2026 POST, headers as a conforming client computes them unless overridden. */
  async function post(token: string, body: { id: unknown; method: string; params?: Record<string, unknown> }, headers: Record<string, string> = {}) {
    const params: Record<string, unknown> = { ...body.params, _meta: meta };
    const res = await fetch(`${gw.url('main')}/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`, accept: ACCEPT, 'content-type': 'application/json',
        'mcp-protocol-version': V, 'mcp-method': body.method,
        ...(typeof params.name === 'string' ? { 'mcp-name': params.name } : {}),
        ...headers,
      },
      body: JSON.stringify({ jsonrpc: '2.0', ...body, params }),
    });
    const text = await res.text();
    const json = (res.headers.get('content-type') ?? '').includes('event-stream')
      ? JSON.parse(text.split('\n').filter((l) => l.startsWith('data: ')).pop()!.slice(6))
      : JSON.parse(text);
    return { status: res.status, json: json as Rpc };
  }

  test('tools, graph names, listings and the prompt work as directly, with tenant prefixes upstream', async () => {
    const c = await connectV2(`${gw.url('main')}/mcp`, { token: acme, mode: 'pin-2026' });
    try {
      assert.equal(c.era, 'modern');
      const tools = await c.client.listTools();
      assert.ok(tools.tools.some((t) => t.name === 'query_graph'));
      assert.ok(!tools.tools.some((t) => t.name === 'delete_graph'), 'tool-policy filtered the list');
      assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { text: 'hi' } })), 'hi');
      const seenBefore = up.seen.length;
      const q = await c.client.callTool({ name: 'query_graph', arguments: { graphName: 'social', query: 'RETURN 1' } });
      assert.equal(q.isError, undefined, textOf(q));
      assert.equal(textOf(q), 'graph social: ran RETURN 1');
      // The upstream got the prefixed name in the body AND in the header it declared for it.
      const call = up.seen.slice(seenBefore).find((s) => (s.body as { method?: string })?.method === 'tools/call')!;
      assert.equal((call.body as any).params.arguments.graphName, 'acme_social');
      assert.equal(call.headers['mcp-param-graph'], 'acme_social');
      const listing = textOf(await c.client.callTool({ name: 'list_graphs', arguments: {} }));
      assert.equal(listing.split('\n').includes('social'), true);
      assert.equal(listing.includes('acme_'), false);
    } finally {
      await c.close();
    }
  });

  test('a graph typed into an elicitation answer gets the prefix; the upstream gets its requestState back unaltered', async () => {
    const c = await connectV2(`${gw.url('main')}/mcp`, {
      token: acme, mode: 'pin-2026',
      onElicit: () => ({ action: 'accept', content: { graph: 'launch' } }),
    });
    try {
      const seenBefore = up.seen.length;
      const r = await c.client.callTool({ name: 'pick_graph', arguments: { graphName: 'social' } });
      assert.equal(r.isError, undefined, textOf(r));
      assert.equal(textOf(r), 'picked launch (asked about social)');
      const retry = up.seen.slice(seenBefore).map((s) => s.body as any).find((b) => b?.params?.inputResponses);
      assert.deepEqual(retry.params.inputResponses.graph.content, { graph: 'acme_launch' });
    } finally {
      await c.close();
    }
  });

  test('a requestState is sealed to its tenant: replayed by another, it is refused before the upstream', async () => {
    const first = await post(acme, { id: 1, method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'social' } } });
    assert.equal(first.json.result?.resultType, 'input_required');
    const state = first.json.result!.requestState as string;
    assert.equal(state.includes('social'), false, 'the client never sees the upstream state in clear');
    const retryParams = { name: 'pick_graph', arguments: { graphName: 'social' }, requestState: state, inputResponses: { graph: { action: 'accept', content: { graph: 'x' } } } };
    const seenBefore = up.seen.length;
    const stolen = await post(globex, { id: 2, method: 'tools/call', params: retryParams });
    assert.equal(stolen.status, 400);
    assert.equal(stolen.json.error?.code, -32602);
    assert.equal(stolen.json.error?.data?.code, 'GW_ERR_REQUEST_STATE_INVALID');
    assert.equal(stolen.json.id, 2);
    const altered = await post(acme, { id: 3, method: 'tools/call', params: { ...retryParams, requestState: state.slice(0, -2) + (state.endsWith('A') ? 'BB' : 'AA') } });
    assert.equal(altered.json.error?.data?.code, 'GW_ERR_REQUEST_STATE_INVALID');
    assert.equal(up.seen.length, seenBefore, 'nothing reached the upstream');
    const own = await post(acme, { id: 4, method: 'tools/call', params: retryParams });
    assert.equal(textOf(own.json.result), 'picked x (asked about social)');
  });

  test('mirror headers that contradict the body are refused with 400/-32020 before any plugin runs', async () => {
    const seenBefore = up.seen.length;
    const wrongName = await post(acme, { id: 5, method: 'tools/call', params: { name: 'echo', arguments: { text: 'a' } } }, { 'mcp-name': 'query_graph' });
    assert.equal(wrongName.status, 400);
    assert.equal(wrongName.json.error?.code, -32020);
    assert.equal(wrongName.json.error?.data?.code, 'GW_ERR_HEADER_MISMATCH');
    assert.equal(wrongName.json.id, 5);
    const wrongMethod = await post(acme, { id: 6, method: 'tools/list' }, { 'mcp-method': 'subscriptions/listen' });
    assert.equal(wrongMethod.json.error?.code, -32020);
    // The gateway learned query_graph's x-mcp-header from tools/list: a mismatched value is caught too.
    await post(acme, { id: 7, method: 'tools/list' });
    const wrongParam = await post(acme, { id: 8, method: 'tools/call', params: { name: 'query_graph', arguments: { graphName: 'social', query: 'q' } } }, { 'mcp-param-graph': 'globex_secret' });
    assert.equal(wrongParam.json.error?.code, -32020);
    const missingParam = await post(acme, { id: 9, method: 'tools/call', params: { name: 'query_graph', arguments: { graphName: 'social', query: 'q' } } });
    assert.equal(missingParam.json.error?.code, -32020);
    assert.match(missingParam.json.error!.message, /Mcp-Param-Graph/);
    const base64 = await post(acme, { id: 10, method: 'tools/call', params: { name: 'query_graph', arguments: { graphName: 'social', query: 'q' } } }, { 'mcp-param-graph': `=?base64?${Buffer.from('social').toString('base64')}?=` });
    assert.equal(textOf(base64.json.result), 'graph social: ran q');
    const tools = up.seen.slice(seenBefore).filter((s) => (s.body as any)?.method === 'tools/call');
    assert.equal(tools.length, 1, 'only the matching call reached the upstream');
  });

  test('a stale Mcp-Session-Id on a 2026 request is ignored, not a 404', async () => {
    const r = await post(acme, { id: 11, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } }, { 'mcp-session-id': 'stale-session-from-2025' });
    assert.equal(r.status, 200);
    assert.equal(textOf(r.json.result), 'x');
    assert.equal(up.seen.at(-1)!.headers['mcp-session-id'], undefined);
  });

  test('filtered listings are private to the caller; the audit line names the protocol version and client', async () => {
    const r = await post(acme, { id: 12, method: 'tools/list' });
    assert.equal(r.json.result?.cacheScope, 'private');
    const line = gw.logs().find((l) => l.kind === 'exchange' && (l as { client?: { name?: string } }).client?.name === 'raw-test');
    assert.ok(line, 'an audit exchange line with the client');
    assert.equal(line.protocolVersion, V);
    assert.equal(line.era, '2026');
  });

  test('a 2025-era client (SDK v1) still works on the same route', async () => {
    const c = await connectV1(`${gw.url('main')}/mcp`, { token: acme });
    try {
      const r = await c.client.callTool({ name: 'query_graph', arguments: { graphName: 'social', query: 'v1' } });
      assert.equal(textOf(r), 'graph social: ran v1');
    } finally {
      await c.close();
    }
  });
});
