/**
 * Flow control through the bridge, both ways. A client that reads nothing must not make the gateway
 * hold the process's output (the child is paused instead), and a process that reads nothing must not
 * make it hold the clients' requests (they are refused above a bound). Bounds are asserted on byte
 * counts the bridge reports, never on time or RSS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { MAX_STDIN_BUFFERED_BYTES } from '../../gateway/stdio/multiplexed-process.ts';
import { QUEUE_HIGH_BYTES } from '../../gateway/stdio/session.ts';
import { bridgeFor, connect, principalHeaders, textOf, waitFor } from './fixtures.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');
const MiB = 1024 * 1024;

describe('stdio bridge flow control', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-stdio-flow-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a client that reads nothing pauses its process: the bridge holds a bounded amount, then delivers everything', async () => {
    const bridge = await bridgeFor({ command: 'node', args: [FAKE] }, { configDir: dir });
    const COUNT = 512;
    const SIZE = 64 * 1024; // 32 MiB of output in all
    try {
      const { client, transport } = await connect(bridge, 'slow');
      const sessionId = transport.sessionId!;
      // A raw POST whose answer (an SSE stream) nobody reads for now.
      const req = http.request(bridge.target, {
        method: 'POST',
        headers: {
          ...principalHeaders(bridge, 'slow'),
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-06-18',
          accept: 'application/json, text/event-stream',
          'content-type': 'application/json',
        },
      });
      req.end(JSON.stringify({ jsonrpc: '2.0', id: 'flood', method: 'tools/call', params: { name: 'flood', arguments: { count: COUNT, size: SIZE } } }));
      const [res] = (await once(req, 'response')) as [http.IncomingMessage];
      assert.equal(res.headers['content-type'], 'text/event-stream');

      await waitFor('the process output is paused for the slow client', () => bridge.processes()[0].outputPaused, 60_000);
      const taken = bridge.processes()[0].stdoutBytes;
      const queued = bridge.sessions().find((s) => s.id === sessionId)!.queuedBytes;
      // What the bridge took from the child is what it holds plus what the kernel's socket buffers
      // hold (a few MiB at most), far from the 32 MiB the child has to say.
      assert.ok(queued <= QUEUE_HIGH_BYTES + 2 * SIZE, `the session's queue is bounded (${queued} bytes)`);
      assert.ok(taken < (COUNT * SIZE) / 2, `the child is held back (${taken} of ${COUNT * SIZE} bytes read)`);

      // Another tenant (another process) is served meanwhile.
      const other = await connect(bridge, 'fast');
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
      await waitFor('flow resumed', () => !bridge.processes()[0].outputPaused && bridge.sessions().every((s) => s.queuedBytes === 0));
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'after' } })), 'after');
      await client.close();
    } finally {
      await bridge.close();
    }
  });

  test('a process that reads nothing: requests beyond the stdin bound are refused with GW_ERR_UPSTREAM_BUSY, not buffered', async () => {
    const bridge = await bridgeFor({ command: 'node', args: [FAKE] }, { configDir: dir });
    try {
      const s = await connect(bridge, 'deaf');
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
      await waitFor('every call forwarded or refused', () => refused.length + bridge.processes()[0].inFlight === CALLS, 60_000);
      assert.ok(refused.length >= 1, 'calls beyond the bound are refused');
      assert.ok(refused.every((c) => c === 'GW_ERR_UPSTREAM_BUSY'), refused.join());
      const buffered = bridge.processes()[0].stdinBufferedBytes;
      assert.ok(buffered <= MAX_STDIN_BUFFERED_BYTES + 2 * MiB, `stdin holds a bounded amount (${buffered} bytes)`);
      await s.client.close(); // the calls still waiting are rejected by the client
      await Promise.all(calls);
    } finally {
      await bridge.close();
    }
  });
});
