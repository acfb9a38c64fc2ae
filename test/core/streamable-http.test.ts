/**
 * Streamable HTTP end to end: the official SDK client → gateway → @modelcontextprotocol/server-everything.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';

const INIT = {
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};
const ACCEPT = 'application/json, text/event-stream';

describe('Streamable HTTP through the gateway', () => {
  let upstream: RunningUpstream;
  let gw: TestGateway;
  // Both a plain route and one whose plugins parse every message, so both relay paths are exercised.
  before(async () => {
    upstream = await startEverything('streamableHttp');
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  everything: { url: ${upstream.url}/mcp }
routes:
  - { listener: main, path: /plain, upstream: everything }
  - { listener: main, path: /inspected, upstream: everything, plugins: [{ type: audit, destination: log }] }
`);
  });
  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  for (const route of ['/plain', '/inspected']) {
    test(`${route}: initialize, tools, resources, prompts`, async () => {
      const client = await connectClient(gw.url() + route);
      try {
        assert.equal(client.getServerVersion()?.name, 'mcp-servers/everything');
        const tools = await client.listTools();
        assert.ok(tools.tools.some((t) => t.name === 'echo'));
        const echo = await client.callTool({ name: 'echo', arguments: { message: 'hello through the gateway' } });
        assert.deepEqual(echo.content, [{ type: 'text', text: 'Echo: hello through the gateway' }]);
        const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
        assert.match(JSON.stringify(sum.content), /42/);
        const resources = await client.listResources();
        assert.ok(resources.resources.length > 0);
        const first = await client.readResource({ uri: resources.resources[0].uri });
        assert.ok(first.contents.length > 0);
        const prompts = await client.listPrompts();
        assert.ok(prompts.prompts.length > 0);
      } finally {
        await client.close();
      }
    });

    test(`${route}: a tool that streams progress notifications`, async () => {
      const client = await connectClient(gw.url() + route);
      try {
        const progress: number[] = [];
        const result = await client.callTool(
          { name: 'trigger-long-running-operation', arguments: { duration: 0.6, steps: 3 } },
          CallToolResultSchema,
          { onprogress: (p) => progress.push(p.progress) },
        );
        assert.deepEqual(progress, [1, 2, 3]);
        assert.match(JSON.stringify(result.content), /completed/);
      } finally {
        await client.close();
      }
    });
  }

  test('server-initiated messages arrive on the standalone GET stream', async () => {
    const client = await connectClient(gw.url() + '/inspected');
    try {
      const logs: unknown[] = [];
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
      await client.setLoggingLevel('debug');
      await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
      const deadline = Date.now() + 8000;
      while (logs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.ok(logs.length > 0, 'a logging notification reached the client');
      await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
    } finally {
      await client.close();
    }
  });

  test('session termination with DELETE; the ended session is then unknown', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(gw.url() + '/plain'));
    const client = new Client({ name: 't', version: '1' });
    await client.connect(transport);
    const sessionId = transport.sessionId!;
    assert.ok(sessionId);
    await transport.terminateSession();
    await client.close();
    const res = await fetch(gw.url() + '/plain', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
    });
    // The upstream answers 400 or 404 for an ended session; the gateway passes it through unchanged.
    assert.ok(res.status === 400 || res.status === 404, `status ${res.status}`);
  });

  test('the upstream session id is sealed, bound to the route, and 202 comes back for notifications', async () => {
    const init = await fetch(gw.url() + '/plain', {
      method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT }, body: JSON.stringify(INIT),
    });
    assert.equal(init.status, 200);
    const sealed = init.headers.get('mcp-session-id')!;
    await init.body?.cancel();
    assert.ok(sealed.length > 60, 'a sealed id, not the upstream UUID');
    assert.doesNotMatch(sealed, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
    const headers = { 'content-type': 'application/json', accept: ACCEPT, 'mcp-session-id': sealed, 'mcp-protocol-version': '2025-06-18' };
    const initialized = await fetch(gw.url() + '/plain', {
      method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    assert.equal(initialized.status, 202);
    // The same session id on another route is not a session there.
    const elsewhere = await fetch(gw.url() + '/inspected', {
      method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
    });
    assert.equal(elsewhere.status, 404);
    const body = (await elsewhere.json()) as { id: number; error: { data: { code: string } } };
    assert.equal(body.error.data.code, 'GW_ERR_SESSION_NOT_FOUND');
    assert.equal(body.id, 3);
  });
});
