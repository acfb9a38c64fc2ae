/**
 * Legacy HTTP+SSE clients on a stdio upstream: it speaks both transports, so a header-less
 * client can use `…/sse?token=` against the default configuration's server-memory.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { authPlugins, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { connectClient } from '../helpers/mcp-client.ts';

const token = (tenant: string) => tokenFor(tenant, { sub: 'alice' });

describe('legacy HTTP+SSE clients in front of a stdio upstream', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  memory:
    stdio:
      command: mcp-server-memory
      pathEnv:
        MEMORY_FILE_PATH: data/memory-{tenant}.jsonl
x-auth: &auth ${authPlugins(['header', 'query'])}
routes:
  - { listener: main, path: /mcp, upstream: memory, plugins: *auth }
  - { listener: main, path: /sse, upstream: memory, plugins: *auth }
`, { env: GATEWAY_ENV });
  });
  after(() => gw?.close());

  test('an SSE client with a URL token writes and reads its tenant graph; Streamable HTTP sees the same data', async () => {
    const acme = await token('acme');
    const legacy = await connectClient(`${gw.url()}/sse?token=${acme}`, { transport: 'sse' });
    try {
      await legacy.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'Legacy', entityType: 'client', observations: ['speaks 2024-11-05'] }] } });
      const read = await legacy.callTool({ name: 'read_graph', arguments: {} });
      assert.match(JSON.stringify(read.content), /Legacy/);
    } finally {
      await legacy.close();
    }
    const modern = await connectClient(`${gw.url()}/mcp`, { bearer: acme });
    try {
      const read = await modern.callTool({ name: 'read_graph', arguments: {} });
      assert.match(JSON.stringify(read.content), /Legacy/, 'same tenant, same process and file');
    } finally {
      await modern.close();
    }
    const other = await connectClient(`${gw.url()}/sse?token=${await token('globex')}`, { transport: 'sse' });
    try {
      const read = await other.callTool({ name: 'read_graph', arguments: {} });
      assert.doesNotMatch(JSON.stringify(read.content), /Legacy/, 'another tenant sees nothing of it');
    } finally {
      await other.close();
    }
    assert.match(await readFile(path.join(gw.dir, 'data/memory-acme.jsonl'), 'utf8'), /Legacy/);
    assert.ok(!gw.logText().includes(acme), 'the URL token never reaches the log');
  });
});
