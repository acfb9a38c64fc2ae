/**
 * The SDK v2 test server and client helpers, directly (no gateway): proves the fixture behaves as the
 * dual-era gateway tests will assume — what a 2026-07-28 client puts on the wire, what MRTR looks like,
 * how 2025-era clients are served — so a gateway test failure is never the fixture's fault.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startV2Server, type V2Server } from '../helpers/v2-server.ts';
import { connectV1, connectV2, textOf, type ElicitParams, type V2Connection } from '../helpers/v2-client.ts';

const ENVELOPE = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'raw-fetch', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': { elicitation: { form: {} } },
};

/** A hand-built 2026-07-28 POST: the standard headers plus the per-request `_meta` envelope the SDK requires. */
async function rawModern(url: string, method: string, params: Record<string, unknown>, extraHeaders: Record<string, string> = {}) {
  const name = typeof params.name === 'string' ? { 'mcp-name': params.name } : {};
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': method,
      ...name,
      ...extraHeaders,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: ENVELOPE } }),
  });
  return { status: res.status, contentType: res.headers.get('content-type'), json: (await res.json()) as any };
}

/** The recorded JSON-RPC requests (POST bodies with a method), with the headers they came with. */
function rpcSeen(server: V2Server) {
  return server.seen
    .filter(r => r.method === 'POST' && typeof (r.body as any)?.method === 'string')
    .map(r => ({ headers: r.headers, body: r.body as { method: string; params?: any } }));
}

describe('v2 client pinned to 2026-07-28, directly against the v2 server', () => {
  let server: V2Server;
  let conn: V2Connection;
  const elicited: ElicitParams[] = [];

  before(async () => {
    server = await startV2Server();
    conn = await connectV2(server.url, {
      mode: 'pin-2026',
      token: 'tok-acme',
      listChanged: true,
      onElicit: params => {
        elicited.push(params);
        return { action: 'accept', content: { graph: 'acme_chosen' } };
      },
    });
  });
  after(async () => {
    await conn?.close();
    await server?.close();
  });

  test('negotiates the modern era with a server/discover probe, sending the bearer token', () => {
    assert.equal(conn.era, 'modern');
    const first = rpcSeen(server)[0];
    assert.equal(first.body.method, 'server/discover');
    assert.equal(first.headers.authorization, 'Bearer tok-acme');
    assert.equal(first.headers['mcp-protocol-version'], '2026-07-28');
  });

  test('lists tools; query_graph carries x-mcp-header under a name different from the argument', async () => {
    const { tools } = await conn.client.listTools();
    assert.deepEqual(tools.map(t => t.name).sort(), ['echo', 'list_graphs', 'pick_graph', 'query_graph', 'slow_progress']);
    const q = tools.find(t => t.name === 'query_graph')!;
    assert.equal((q.inputSchema.properties as any).graphName['x-mcp-header'], 'Graph');
  });

  test('echo and query_graph; the standard and Mcp-Param headers reach the server', async () => {
    assert.equal(textOf(await conn.client.callTool({ name: 'echo', arguments: { text: 'hello' } })), 'hello');
    const result = await conn.client.callTool({ name: 'query_graph', arguments: { graphName: 'acme_social', query: 'MATCH (n) RETURN n' } });
    assert.equal(textOf(result), 'graph acme_social: ran MATCH (n) RETURN n');

    const call = rpcSeen(server).find(r => r.body.method === 'tools/call' && r.body.params.name === 'query_graph')!;
    assert.equal(call.headers['mcp-method'], 'tools/call');
    assert.equal(call.headers['mcp-name'], 'query_graph');
    // Mirrored from `graphName`, named by the annotation (`Graph`), value as in the body.
    assert.equal(call.headers['mcp-param-graph'], 'acme_social');
    assert.equal(call.headers['mcp-protocol-version'], '2026-07-28');
    assert.equal(call.headers.authorization, 'Bearer tok-acme');
    // The era travels in the body too: every modern request carries the `_meta` envelope.
    assert.equal(call.body.params._meta['io.modelcontextprotocol/protocolVersion'], '2026-07-28');
  });

  test('list_graphs shows every graph the server has seen', async () => {
    await conn.client.callTool({ name: 'query_graph', arguments: { graphName: 'globex_social', query: 'RETURN 1' } });
    const lines = textOf(await conn.client.callTool({ name: 'list_graphs', arguments: {} })).split('\n');
    assert.deepEqual(lines.sort(), ['acme_social', 'globex_social']);
  });

  test('pick_graph: the SDK client drives the input_required round trip through onElicit', async () => {
    const result = await conn.client.callTool({ name: 'pick_graph', arguments: { graphName: 'acme_social' } });
    assert.equal(textOf(result), 'picked acme_chosen (asked about acme_social)');
    assert.equal(elicited.length, 1);
    assert.equal(elicited[0].message, 'Which graph instead of acme_social?');
    assert.deepEqual((elicited[0].requestedSchema as any).properties, { graph: { type: 'string' } });

    // Two tools/call requests: the first bare, the retry carrying the answers and the echoed state.
    const calls = rpcSeen(server).filter(r => r.body.method === 'tools/call' && r.body.params.name === 'pick_graph');
    assert.equal(calls.length, 2);
    assert.equal(calls[0].body.params.requestState, undefined);
    assert.match(calls[1].body.params.requestState, /^state:acme_social:/);
    assert.deepEqual(calls[1].body.params.inputResponses, { graph: { action: 'accept', content: { graph: 'acme_chosen' } } });
    assert.deepEqual(calls[1].body.params.arguments, { graphName: 'acme_social' });
  });

  test('slow_progress streams progress (and a log line when the request asks for one) before the result', async () => {
    const progress: number[] = [];
    const logs: unknown[] = [];
    conn.client.setNotificationHandler('notifications/message', n => {
      logs.push(n.params.data);
    });
    const result = await conn.client.callTool(
      // On 2026-07-28 logging is opt-in per request, through the envelope's logLevel key.
      { name: 'slow_progress', arguments: { steps: 3 }, _meta: { 'io.modelcontextprotocol/logLevel': 'info' } },
      { onprogress: p => progress.push(p.progress) },
    );
    assert.equal(textOf(result), 'done 3 steps');
    assert.deepEqual(progress, [1, 2, 3]);
    assert.deepEqual(logs, ['starting 3 steps']);
  });

  test('reads graph://listing and gets graph_prompt', async () => {
    const { contents } = await conn.client.readResource({ uri: 'graph://listing' });
    assert.equal((contents[0] as { text: string }).text, '- acme_social\n- globex_social');
    const prompt = await conn.client.getPrompt({ name: 'graph_prompt', arguments: { graphName: 'acme_social' } });
    assert.deepEqual(prompt.messages[0].content, { type: 'text', text: 'Describe the graph acme_social' });
  });

  test('addTool reaches the listen stream as tools/list_changed, and the tool is then listed', async () => {
    assert.deepEqual(conn.subscription?.honoredFilter, { toolsListChanged: true });
    const changed = conn.toolsChanged();
    server.addTool('extra_tool');
    await changed;
    const { tools } = await conn.client.listTools();
    assert.ok(tools.some(t => t.name === 'extra_tool'));
    assert.equal(textOf(await conn.client.callTool({ name: 'extra_tool', arguments: {} })), 'extra_tool called');
  });
});

describe('the v2 server on the raw wire', () => {
  let server: V2Server;
  before(async () => {
    server = await startV2Server();
  });
  after(async () => {
    await server?.close();
  });

  test('server/discover answers supportedVersions including 2026-07-28', async () => {
    const { status, json } = await rawModern(server.url, 'server/discover', {});
    assert.equal(status, 200);
    assert.ok(json.result.supportedVersions.includes('2026-07-28'));
  });

  test('pick_graph refuses a requestState that does not match the one issued', async () => {
    const first = await rawModern(server.url, 'tools/call', { name: 'pick_graph', arguments: { graphName: 'acme_social' } });
    assert.equal(first.json.result.resultType, 'input_required');
    assert.equal(first.json.result.inputRequests.graph.method, 'elicitation/create');
    const issued: string = first.json.result.requestState;
    assert.match(issued, /^state:acme_social:/);

    const answers = { graph: { action: 'accept', content: { graph: 'g' } } };
    // What a gateway that strips the tenant prefix inside strings would send back.
    const altered = await rawModern(server.url, 'tools/call', {
      name: 'pick_graph',
      arguments: { graphName: 'acme_social' },
      inputResponses: answers,
      requestState: issued.replace('acme_social', 'social'),
    });
    assert.equal(altered.json.result.isError, true);
    assert.equal(textOf(altered.json.result), 'requestState was altered');

    const intact = await rawModern(server.url, 'tools/call', {
      name: 'pick_graph',
      arguments: { graphName: 'acme_social' },
      inputResponses: answers,
      requestState: issued,
    });
    assert.equal(textOf(intact.json.result), 'picked g (asked about acme_social)');
  });

  test('an Mcp-Param-Graph header that disagrees with the body is refused before the tool runs', async () => {
    // The SDK's own check: a gateway rewriting graphName must rewrite the header to match.
    const res = await rawModern(server.url, 'tools/call', { name: 'query_graph', arguments: { graphName: 'acme_g', query: 'q' } }, { 'mcp-param-graph': 'g' });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, -32020);
  });

  test('slow_progress answers as an SSE stream', async () => {
    const res = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'slow_progress' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'slow_progress', arguments: { steps: 2 }, _meta: { ...ENVELOPE, progressToken: 'p1' } } }),
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const body = await res.text();
    assert.equal(body.match(/"notifications\/progress"/g)?.length, 2);
    assert.match(body, /"done 2 steps"/);
  });
});

describe('2025-era clients', () => {
  test('a v1 client initializes and calls echo through the stateless fallback', async () => {
    const server = await startV2Server();
    try {
      const v1 = await connectV1(server.url, { token: 'tok-old' });
      try {
        assert.equal(textOf(await v1.client.callTool({ name: 'echo', arguments: { text: 'old' } }) as { content: unknown }), 'old');
      } finally {
        await v1.close();
      }
      const init = rpcSeen(server).find(r => r.body.method === 'initialize')!;
      assert.equal(init.headers.authorization, 'Bearer tok-old');
      assert.equal(init.headers['mcp-method'], undefined);
      assert.equal(init.body.params._meta, undefined);
    } finally {
      await server.close();
    }
  });

  test('a v2 client in auto mode lands on the modern era against this server', async () => {
    const server = await startV2Server();
    try {
      const conn = await connectV2(server.url, { mode: 'auto' });
      try {
        assert.equal(conn.era, 'modern');
        assert.equal(textOf(await conn.client.callTool({ name: 'echo', arguments: { text: 'x' } })), 'x');
      } finally {
        await conn.close();
      }
    } finally {
      await server.close();
    }
  });

  test("legacy: 'off' refuses the 2025 initialize", async () => {
    const server = await startV2Server({ legacy: 'off' });
    try {
      await assert.rejects(connectV1(server.url), /-32022|Unsupported protocol version/);
    } finally {
      await server.close();
    }
  });
});
