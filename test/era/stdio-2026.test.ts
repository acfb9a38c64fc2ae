/**
 * A 2026-07-28 client (SDK v2, pinned) in front of a 2025-era stdio server (the real
 * @modelcontextprotocol/server-memory, one process per tenant): translated, it gets the same
 * knowledge graph a 2025 client gets, and tenants stay apart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { connectV1, connectV2, textOf } from '../helpers/v2-client.ts';
import { AUTH_PLUGINS } from '../tenant/e2e-support.ts';

describe('2026 client → stdio server-memory (2025 era)', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  memory:
    stdio: { command: mcp-server-memory, pathEnv: { MEMORY_FILE_PATH: 'data/memory-{tenant}.jsonl' } }
routes:
  - listener: main
    path: /mcp
    upstream: memory
    plugins:${AUTH_PLUGINS}
      - { type: audit, destination: log }
`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await gw?.close();
  });

  test('entities written by a 2026 client are read back by it and by a 2025 client of the same tenant, not by another tenant', async () => {
    const url = `${gw.url('main')}/mcp`;
    const modern = await connectV2(url, { token: await tokenFor('acme'), mode: 'pin-2026' });
    const legacy = await connectV1(url, { token: await tokenFor('acme') });
    const other = await connectV2(url, { token: await tokenFor('globex'), mode: 'pin-2026' });
    try {
      assert.equal(modern.era, 'modern');
      const tools = (await modern.client.listTools()).tools.map((t) => t.name);
      assert.ok(tools.includes('create_entities') && tools.includes('read_graph'));
      await modern.client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'Ada', entityType: 'person', observations: ['wrote the first program'] }] } });
      assert.match(textOf(await modern.client.callTool({ name: 'read_graph', arguments: {} })), /Ada/);
      assert.match(textOf(await legacy.client.callTool({ name: 'read_graph', arguments: {} })), /Ada/);
      assert.doesNotMatch(textOf(await other.client.callTool({ name: 'read_graph', arguments: {} })), /Ada/);
    } finally {
      await Promise.all([modern.close(), legacy.close(), other.close()]);
    }
  });
});
