/**
 * The example plugin of docs/plugins.md, loaded by module path from gateway.yaml, in front of a real
 * MCP server: what the guide promises is what a plugin author gets.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';

const examplePlugin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples/plugins/secret-scrubber.ts');

describe('a plugin loaded from a module path (examples/plugins/secret-scrubber.ts)', () => {
  let upstream: RunningUpstream;
  let gw: TestGateway;
  before(async () => {
    // The upstream's environment holds a fake key; its get-env tool prints the environment.
    upstream = await startEverything('streamableHttp', { FAKE_PROVIDER_KEY: 'sk-live0123456789abcdef' });
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams: { everything: { url: ${upstream.url}/mcp } }
routes:
  - listener: main
    path: /mcp
    upstream: everything
    plugins:
      - { type: audit, destination: log }
      - { type: ${examplePlugin}, patterns: ['sk-[A-Za-z0-9]{8,}'] }
`);
  });
  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  test('a secret in tool arguments is refused with the plugin\'s code and never reaches the upstream', async () => {
    const client = await connectClient(gw.url() + '/mcp');
    try {
      await assert.rejects(
        client.callTool({ name: 'echo', arguments: { message: 'my key is sk-abcdef0123456789' } }),
        (err: Error & { code?: number; data?: { code?: string } }) => {
          assert.equal(err.code, -32602);
          assert.equal(err.data?.code, 'EXAMPLE_ERR_SECRET_IN_ARGUMENTS');
          return true;
        },
      );
      const fine = await client.callTool({ name: 'echo', arguments: { message: 'nothing secret' } });
      assert.deepEqual(fine.content, [{ type: 'text', text: 'Echo: nothing secret' }]);
    } finally {
      await client.close();
    }
    const refusedLine = gw.logs().find((l) => l.kind === 'exchange' && Array.isArray(l.messageRefusals));
    assert.ok(refusedLine, 'the audit line names the refusal');
  });

  test('secrets in tool results are scrubbed before they reach the client', async () => {
    const client = await connectClient(gw.url() + '/mcp');
    try {
      const result = await client.callTool({ name: 'get-env', arguments: {} });
      const text = JSON.stringify(result.content);
      assert.match(text, /FAKE_PROVIDER_KEY/);
      assert.doesNotMatch(text, /sk-live0123456789abcdef/);
      assert.match(text, /\[scrubbed\]/);
    } finally {
      await client.close();
    }
    assert.ok(gw.logs().some((l) => l.msg === 'scrubbed credentials from tool results' && (l.scrubbed as number) >= 1));
  });

  test('an unknown option of a module plugin is a config error naming its path', async () => {
    await assert.rejects(
      startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams: { everything: { url: ${upstream.url}/mcp } }
routes:
  - { listener: main, path: /mcp, upstream: everything, plugins: [{ type: ${examplePlugin}, pattern: 'x' }] }
`),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'GW_ERR_CONFIG');
        assert.match(err.message, /routes\[0\]\.plugins\[0\]\.pattern: unknown key/);
        return true;
      },
    );
  });
});
