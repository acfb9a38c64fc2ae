/**
 * The legacy HTTP+SSE transport (2024-11-05) end to end: the SDK's SSEClientTransport → gateway →
 * @modelcontextprotocol/server-everything in `sse` mode, mounted under a prefix the upstream knows
 * nothing about.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';

/** Opens GET <url> and returns the endpoint event's data and the reader (kept open: it is the session). */
async function openLegacyStream(url: string) {
  const res = await fetch(url, { headers: { accept: 'text/event-stream' } });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  let text = '';
  while (!/event: endpoint\r?\ndata: .+\r?\n\r?\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended before the endpoint event: ${text}`);
    text += Buffer.from(value).toString();
  }
  const endpoint = /event: endpoint\r?\ndata: (.+)\r?\n/.exec(text)![1];
  return { endpoint, reader };
}

describe('legacy HTTP+SSE through the gateway', () => {
  let upstream: RunningUpstream;
  let gw: TestGateway;
  before(async () => {
    upstream = await startEverything('sse');
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  legacy: { url: ${upstream.url} }
routes:
  - { listener: main, path: /teams/blue, upstream: legacy, legacyPostTimeout: 2s }
  - { listener: main, path: /audited, upstream: legacy, plugins: [{ type: audit, destination: log }] }
`);
  });
  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  for (const route of ['/teams/blue', '/audited']) {
    test(`${route}: the SDK SSE client works end to end, progress included`, async () => {
      const client = await connectClient(`${gw.url()}${route}/sse`, { transport: 'sse' });
      try {
        const tools = await client.listTools();
        assert.ok(tools.tools.some((t) => t.name === 'echo'));
        const echo = await client.callTool({ name: 'echo', arguments: { message: 'legacy' } });
        assert.deepEqual(echo.content, [{ type: 'text', text: 'Echo: legacy' }]);
        const progress: number[] = [];
        await client.callTool(
          { name: 'trigger-long-running-operation', arguments: { duration: 0.3, steps: 3 } },
          CallToolResultSchema,
          { onprogress: (p) => progress.push(p.progress) },
        );
        // server-everything's SSE mode may send the last step after the result (the SDK client then
        // drops it), so the same run without the gateway also shows [1, 2]: assert order, not count.
        assert.ok(progress.length >= 2, `progress ${progress}`);
        assert.deepEqual(progress, [...progress].sort((a, b) => a - b));
      } finally {
        await client.close();
      }
    });
  }

  test('the endpoint event points back at the gateway, under the route, with the upstream session sealed', async () => {
    const { endpoint, reader } = await openLegacyStream(`${gw.url()}/teams/blue/sse`);
    try {
      const url = new URL(endpoint, gw.url());
      assert.equal(url.pathname, '/teams/blue/message', 'the upstream path /message, mounted under the route');
      const sealed = url.searchParams.get('sessionId')!;
      assert.ok(sealed.length > 60);
      // The upstream's own session id (a UUID) never reaches the client.
      assert.doesNotMatch(endpoint, /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-/);
      const post = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
      });
      assert.equal(post.status, 202);
      let text = '';
      while (!/"id":1/.test(text)) text += Buffer.from((await reader.read()).value!).toString();
      assert.match(text, /mcp-servers\/everything/);
    } finally {
      await reader.cancel();
    }
  });

  test('a sealed endpoint is refused on another route, and a forged one everywhere (404, with the id)', async () => {
    const { endpoint, reader } = await openLegacyStream(`${gw.url()}/teams/blue/sse`);
    try {
      const sealed = new URL(endpoint, gw.url()).searchParams.get('sessionId')!;
      const body = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' });
      for (const target of [`/audited/message?sessionId=${sealed}`, `/teams/blue/message?sessionId=${sealed.slice(0, -4)}AAAA`]) {
        const res = await fetch(gw.url() + target, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        assert.equal(res.status, 404, target);
        const json = (await res.json()) as { id: number; error: { data: { code: string } } };
        assert.equal(json.error.data.code, 'GW_ERR_SESSION_NOT_FOUND');
        assert.equal(json.id, 9);
      }
    } finally {
      await reader.cancel();
    }
  });
});
