/**
 * The audit plugin writing to a file, as operators run it: one line per exchange and per JSON-RPC
 * message, batched but never held longer than `flushInterval`, and no credential in it.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { authPluginItems, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';

describe('audit to a file', () => {
  let upstream: RunningUpstream;
  let gw: TestGateway;
  let token: string;
  before(async () => {
    upstream = await startEverything('streamableHttp');
    token = await tokenFor('acme', { sub: 'alice' });
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams: { everything: { url: ${upstream.url}/mcp } }
routes:
  - listener: main
    path: /mcp
    upstream: everything
    plugins: [{ type: audit, destination: logs/audit.log, flushInterval: 200ms }, ${authPluginItems(['header', 'query'])}]
`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await gw?.close();
    await upstream?.close();
  });

  test('exchange and message lines reach the file within the flush interval, without the token', async () => {
    const client = await connectClient(`${gw.url()}/mcp?token=${token}`);
    await client.callTool({ name: 'echo', arguments: { message: 'audited' } });
    await client.close();
    await new Promise((r) => setTimeout(r, 600));
    const text = await readFile(path.join(gw.dir, 'logs/audit.log'), 'utf8');
    const lines = text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const call = lines.find((l) => l.kind === 'message' && l.direction === 'request' && l.rpcMethod === 'tools/call');
    assert.ok(call, 'a line for the tools/call message');
    assert.equal(call.tool, 'echo');
    assert.equal(call.tenant, 'acme');
    assert.equal(call.sub, 'alice');
    const answer = lines.find((l) => l.kind === 'message' && l.direction === 'response' && l.rpcId === call.rpcId && l.tool === 'echo');
    assert.ok(answer, 'the response line names the tool of the request it answers');
    const exchange = lines.find((l) => l.kind === 'exchange' && l.method === 'POST' && l.status === 200);
    assert.ok(exchange);
    assert.equal(exchange.path, '/mcp');
    assert.equal(typeof exchange.latencyMs, 'number');
    assert.ok(!text.includes(token), 'the URL token never reaches the audit file');
    assert.ok(!text.includes('token='), 'nor does the query parameter');
  });
});
