/**
 * Flow control, both ways. A client that reads nothing must not make the gateway hold the process's
 * output (the child is paused instead), and a process that reads nothing must not make it hold the
 * clients' requests (they are refused above a bound). Bounds are asserted on byte counts the upstream
 * reports, never on time or RSS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MAX_STDIN_BUFFERED_BYTES } from '../../gateway/stdio/multiplexed-process.ts';
import { QUEUE_HIGH_BYTES } from '../../gateway/stdio/virtual-session.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { authPlugins, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { upstreamFor, connect, textOf, waitFor } from './fixtures.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');
const MiB = 1024 * 1024;

describe('stdio flow control', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-stdio-flow-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a client that reads nothing, through the gateway, pauses its process: a bounded amount is held, then everything is delivered', async () => {
    const gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  fake:
    stdio: { command: node, args: ["${FAKE}"] }
routes:
  - { listener: main, path: /mcp, upstream: fake, plugins: ${authPlugins()} }
`, { env: GATEWAY_ENV });
    const upstream = gw.gw.runtime().upstreams.get('fake')!.stdio!;
    const COUNT = 512;
    const SIZE = 64 * 1024; // 32 MiB of output in all
    const open = async (tenant: string) => {
      const token = await tokenFor(tenant);
      const client = new Client({ name: tenant, version: '1' }, { capabilities: {} });
      const transport = new StreamableHTTPClientTransport(new URL(`${gw.url()}/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
      await client.connect(transport);
      return { client, transport, token };
    };
    try {
      const { client, transport, token } = await open('slow');
      // A raw POST whose answer (an event stream) nobody reads for now.
      const req = http.request(`${gw.url()}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'mcp-session-id': transport.sessionId!,
          'mcp-protocol-version': '2025-06-18',
          accept: 'application/json, text/event-stream',
          'content-type': 'application/json',
        },
      });
      req.end(JSON.stringify({ jsonrpc: '2.0', id: 'flood', method: 'tools/call', params: { name: 'flood', arguments: { count: COUNT, size: SIZE } } }));
      const [res] = (await once(req, 'response')) as [http.IncomingMessage];
      assert.equal(res.headers['content-type'], 'text/event-stream');

      const slow = () => upstream.processes().find((p) => p.tenant === 'slow')!;
      await waitFor('the process output is paused for the slow client', () => slow().outputPaused, 60_000);
      const taken = slow().stdoutBytes;
      const queued = upstream.sessions().find((s) => s.tenant === 'slow')!.queuedBytes;
      // What the gateway took from the child is what it holds plus what the kernel's socket buffers
      // hold (a few MiB at most), far from the 32 MiB the child has to say.
      assert.ok(queued <= QUEUE_HIGH_BYTES + 2 * SIZE, `the session's queue is bounded (${queued} bytes)`);
      assert.ok(taken < (COUNT * SIZE) / 2, `the child is held back (${taken} of ${COUNT * SIZE} bytes read)`);

      // Another tenant (another process) is served meanwhile.
      const other = await open('fast');
      assert.equal(textOf(await other.client.callTool({ name: 'echo', arguments: { text: 'not stuck' } })), 'not stuck');
      await other.client.close();

      // The client reads now: every message arrives, in order, then the answer.
      let buffer = '';
      let seq = 0;
      let answer: { id?: unknown; result?: unknown } | undefined;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split('\n').find((l) => l.startsWith('data: '));
          if (!data) continue;
          const msg = JSON.parse(data.slice(6));
          if (msg.method === 'notifications/message') {
            assert.equal(msg.params.data.seq, seq++, 'in order, none lost');
          } else answer = msg;
        }
      });
      await once(res, 'end');
      assert.equal(seq, COUNT);
      assert.equal(answer?.id, 'flood');
      assert.equal(textOf(answer?.result), 'flooded');
      await waitFor('flow resumed', () => !slow().outputPaused && upstream.sessions().every((s) => s.queuedBytes === 0));
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'after' } })), 'after');
      await client.close();
    } finally {
      await gw.close();
    }
  });

  test('a process that reads nothing: requests beyond the stdin bound are refused with GW_ERR_UPSTREAM_BUSY, not buffered', async () => {
    const upstream = upstreamFor({ command: 'node', args: [FAKE] }, { configDir: dir });
    try {
      const s = await connect(upstream, 'deaf');
      assert.equal(textOf(await s.client.callTool({ name: 'deaf', arguments: {} })), 'deaf');
      const big = 'x'.repeat(MiB);
      const CALLS = 16; // 16 MiB of requests against an 8 MiB bound
      const refused: string[] = [];
      const calls = Array.from({ length: CALLS }, () =>
        s.client.callTool({ name: 'echo', arguments: { text: big } }).then(
          () => assert.fail('a process that reads nothing cannot answer'),
          (err: unknown) => {
            if (err instanceof McpError && (err.data as { code?: string } | undefined)?.code) refused.push((err.data as { code: string }).code);
          },
        ),
      );
      // Each call is either waiting in the process's stdin or refused at once.
      await waitFor('every call forwarded or refused', () => refused.length + upstream.processes()[0].inFlight === CALLS, 60_000);
      assert.ok(refused.length >= 1, 'calls beyond the bound are refused');
      assert.ok(refused.every((c) => c === 'GW_ERR_UPSTREAM_BUSY'), refused.join());
      const buffered = upstream.processes()[0].stdinBufferedBytes;
      assert.ok(buffered <= MAX_STDIN_BUFFERED_BYTES + 2 * MiB, `stdin holds a bounded amount (${buffered} bytes)`);
      await s.client.close(); // the calls still waiting are rejected by the client
      await Promise.all(calls);
    } finally {
      await upstream.close();
    }
  });
});
