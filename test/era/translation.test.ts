/**
 * Translation between eras through the gateway, with the full pipeline on the route:
 * - a 2026-07-28 client (SDK v2, pinned) in front of 2025-era servers (server-everything, the
 *   FalkorDB MCP server): it gets what a 2025 client gets directly, server-initiated elicitation
 *   turned into `input_required` round trips;
 * - a 2025 client (SDK v1) in front of an SDK v2 server: it gets what a 2026 client gets, where
 *   directly it cannot (elicitation in a multi round-trip tool, list-change notifications).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { startEverything, startFalkorMcp, stopChild, type RunningUpstream } from '../helpers/upstreams.ts';
import { connectV1, connectV2, textOf } from '../helpers/v2-client.ts';
import { startV2Server, type V2Server } from '../helpers/v2-server.ts';
import { AUTH_PLUGINS } from '../tenant/e2e-support.ts';

const PIPELINE = `${AUTH_PLUGINS}
      - { type: rate-limit, key: tenant, limits: [{ name: all, points: 1000, duration: 1m }] }
      - { type: tool-policy }
      - { type: graph-rewrite, tools: [query_graph, pick_graph], answerFields: [graphName, graph], unlistedToolWithArgument: pass }
      - { type: audit, destination: log }`;

describe('translation between eras, full pipeline', () => {
  let everything: RunningUpstream;
  let falkor: RunningUpstream;
  let v2: V2Server;
  let gw: TestGateway;
  let acme: string;

  before(async () => {
    [everything, falkor, v2] = await Promise.all([startEverything('streamableHttp'), startFalkorMcp(), startV2Server()]);
    acme = await tokenFor('acme');
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  everything: { url: ${everything.url}/mcp }
  falkor: { url: ${falkor.url}/mcp }
  modern: { url: ${v2.url}, era: "2026" }
routes:
  - { listener: main, path: /everything, upstream: everything, plugins: ${'['}${']'} }
  - listener: main
    path: /everything-full
    upstream: everything
    plugins:${PIPELINE}
  - listener: main
    path: /falkor
    upstream: falkor
    plugins:${PIPELINE}
  - listener: main
    path: /modern
    upstream: modern
    plugins:${PIPELINE}
`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await gw?.close();
    await Promise.all([everything && stopChild(everything.child), falkor && stopChild(falkor.child), v2?.close()]);
  });

  for (const path of ['/everything', '/everything-full']) {
    test(`2026 client → 2025 server-everything (${path}): same tools and answers as a 2025 client directly; elicitation as a round trip`, async () => {
      const direct = await connectV1(`${everything.url}/mcp`, {});
      const c = await connectV2(`${gw.url('main')}${path}`, {
        token: acme, mode: 'pin-2026', onElicit: () => ({ action: 'accept', content: { name: 'Ada', check: true, email: 'ada@example.com' } }),
      });
      try {
        assert.equal(c.era, 'modern', 'the client speaks 2026 to the gateway');
        const names = (r: { tools: Array<{ name: string }> }) => r.tools.map((t) => t.name).filter((n) => !n.includes('elicitation') && !n.includes('sampling') && !n.includes('roots')).sort();
        assert.deepEqual(names(await c.client.listTools()), names(await direct.client.listTools()));
        const args = { message: 'hello across eras' };
        assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: args })), textOf(await direct.client.callTool({ name: 'echo', arguments: args })));
        const sum = { a: 2, b: 40 };
        assert.equal(textOf(await c.client.callTool({ name: 'get-sum', arguments: sum })), textOf(await direct.client.callTool({ name: 'get-sum', arguments: sum })));
        const elicited = await c.client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
        assert.match(JSON.stringify(elicited), /Ada/);
      } finally {
        await c.close();
        await direct.close();
      }
    });
  }

  test('2026 client → 2025 FalkorDB MCP server: the graph name reaches it prefixed, and comes back as the client gave it', async () => {
    const c = await connectV2(`${gw.url('main')}/falkor`, { token: acme, mode: 'pin-2026' });
    try {
      const r = await c.client.callTool({ name: 'query_graph', arguments: { graphName: 'social', query: 'RETURN 1' } });
      const text = textOf(r);
      assert.match(text, /social/);
      assert.doesNotMatch(text, /acme_social/);
      assert.match(falkor.output() + text, /social/);
    } finally {
      await c.close();
    }
  });

  test('2025 client → 2026 SDK v2 server: a multi round-trip tool elicits through the gateway, and list changes arrive', async () => {
    // Directly, a 2025 client cannot answer the server's input request:
    const direct = await connectV1(v2.url, { onElicit: () => ({ action: 'accept', content: { graph: 'launch' } }) });
    try {
      const r = await direct.client.callTool({ name: 'pick_graph', arguments: { graphName: 'social' } });
      assert.equal(r.isError, true);
    } finally {
      await direct.close();
    }
    const c = await connectV1(`${gw.url('main')}/modern`, { token: acme, onElicit: () => ({ action: 'accept', content: { graph: 'launch' } }) });
    try {
      const r = await c.client.callTool({ name: 'pick_graph', arguments: { graphName: 'social' } });
      assert.equal(textOf(r), 'picked launch (asked about social)');
      const q = await c.client.callTool({ name: 'query_graph', arguments: { graphName: 'social', query: 'q' } });
      assert.equal(textOf(q), 'graph social: ran q');
      const call = v2.seen.filter((s) => (s.body as any)?.params?.name === 'query_graph').at(-1)!;
      assert.equal(call.headers['mcp-param-graph'], 'acme_social');
      assert.equal(call.headers['mcp-session-id'], undefined);
    } finally {
      await c.close();
    }
  });
});
