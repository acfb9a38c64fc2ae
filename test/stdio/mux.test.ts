/**
 * The multiplexer in front of a shared process, against a purpose-built stdio server (it can broadcast,
 * ask the client, report progress and count its initializes on demand), with the SDK client.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  CreateMessageRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { upstreamFor, connect, dispatchRaw, messagesOf, principal, refusalOf, textOf, waitFor } from './fixtures.ts';
import type { StdioUpstream } from '../../gateway/stdio/upstream.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');

describe('stdio upstream multiplexing (shared process)', () => {
  let dir: string;
  let upstream: StdioUpstream;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-stdio-mux-'));
    upstream = upstreamFor({ command: 'node', args: [FAKE] }, { configDir: dir });
  });
  after(async () => {
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the process is initialized once; every session gets the cached initialize result', async () => {
    const a = await connect(upstream, 'mux1');
    const b = await connect(upstream, 'mux1', 'other');
    assert.equal(a.client.getServerVersion()?.name, 'fake-stdio-server');
    assert.equal(b.client.getServerVersion()?.name, 'fake-stdio-server');
    const stats = JSON.parse(textOf(await b.client.callTool({ name: 'stats', arguments: {} })));
    assert.equal(stats.initializes, 1);
    assert.equal(stats.initialized, 1);
    assert.equal(stats.pid, upstream.processes().find((p) => p.pool === 'mux1')?.pid);
    await a.client.close();
    await b.client.close();
  });

  test('list_changed reaches every session of the process; log messages only the calling one', async () => {
    const a = await connect(upstream, 'mux2', 'a');
    const b = await connect(upstream, 'mux2', 'b');
    const changed = { a: 0, b: 0 };
    const logs = { a: [] as unknown[], b: [] as unknown[] };
    a.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed.a++);
    b.client.setNotificationHandler(ToolListChangedNotificationSchema, () => void changed.b++);
    a.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.a.push(n.params.data));
    b.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.b.push(n.params.data));

    await a.client.callTool({ name: 'list_changed', arguments: {} });
    await waitFor('list_changed on both sessions', () => changed.a === 1 && changed.b === 1);

    await a.client.callTool({ name: 'log', arguments: { text: 'for a only' } });
    await b.client.callTool({ name: 'log', arguments: { text: 'for b only' } });
    assert.deepEqual(logs.a, ['for a only']);
    assert.deepEqual(logs.b, ['for b only']);
    await a.client.close();
    await b.client.close();
  });

  test('progress notifications go to the session whose request asked, with its own token', async () => {
    const a = await connect(upstream, 'mux3', 'a');
    const b = await connect(upstream, 'mux3', 'b');
    const seen = { a: [] as number[], b: [] as number[] };
    const [ra, rb] = await Promise.all([
      a.client.callTool({ name: 'progress', arguments: { steps: 3 } }, undefined, { onprogress: (p) => void seen.a.push(p.progress) }),
      b.client.callTool({ name: 'progress', arguments: { steps: 5 } }, undefined, { onprogress: (p) => void seen.b.push(p.progress) }),
    ]);
    assert.deepEqual(seen.a, [1, 2, 3]);
    assert.deepEqual(seen.b, [1, 2, 3, 4, 5]);
    // The server saw upstream-made tokens, not the clients' own (which collide).
    const tokenA = /token=(\S+)/.exec(textOf(ra))![1];
    const tokenB = /token=(\S+)/.exec(textOf(rb))![1];
    assert.notEqual(tokenA, tokenB);
    await a.client.close();
    await b.client.close();
  });

  test('a server request (sampling) goes to the session whose call caused it, and its answer comes back', async () => {
    const a = await connect(upstream, 'mux4', 'a', { sampling: {} });
    const b = await connect(upstream, 'mux4', 'b', { sampling: {} });
    const asked = { a: 0, b: 0 };
    for (const [who, s] of [['a', a], ['b', b]] as const) {
      s.client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
        asked[who]++;
        const prompt = (req.params.messages[0].content as { text: string }).text;
        return { role: 'assistant', model: 'test', content: { type: 'text', text: `${who} answers ${prompt}` } };
      });
    }
    const r = await a.client.callTool({ name: 'ask', arguments: { text: 'hello' } });
    assert.equal(textOf(r), 'client said: a answers hello');
    const r2 = await b.client.callTool({ name: 'ask', arguments: { text: 'hi' } });
    assert.equal(textOf(r2), 'client said: b answers hi');
    assert.deepEqual(asked, { a: 1, b: 1 });
    await a.client.close();
    await b.client.close();
  });

  test('a server request while two sessions have calls in flight is refused, not guessed', async () => {
    const a = await connect(upstream, 'mux5', 'a', { sampling: {} });
    const b = await connect(upstream, 'mux5', 'b', { sampling: {} });
    let asked = 0;
    for (const s of [a, b]) s.client.setRequestHandler(CreateMessageRequestSchema, async () => {
      asked++;
      return { role: 'assistant', model: 'test', content: { type: 'text', text: 'x' } };
    });
    const slow = b.client.callTool({ name: 'sleep', arguments: { ms: 400 } });
    await new Promise((r) => setTimeout(r, 50));
    const r = await a.client.callTool({ name: 'ask', arguments: { text: 'who?' } });
    assert.equal(r.isError, true);
    assert.match(textOf(r), /cannot tell which MCP session/);
    assert.equal(asked, 0);
    await slow;
    await a.client.close();
    await b.client.close();
  });

  test('resource updates go to subscribed sessions only; the process stays subscribed while anyone is', async () => {
    const a = await connect(upstream, 'mux6', 'a');
    const b = await connect(upstream, 'mux6', 'b');
    const updates = { a: 0, b: 0 };
    a.client.setNotificationHandler(ResourceUpdatedNotificationSchema, () => void updates.a++);
    b.client.setNotificationHandler(ResourceUpdatedNotificationSchema, () => void updates.b++);
    await a.client.subscribeResource({ uri: 'mem://x' });
    await b.client.callTool({ name: 'update', arguments: { uri: 'mem://x' } });
    await b.client.callTool({ name: 'update', arguments: { uri: 'mem://other' } });
    await waitFor('update delivered to a', () => updates.a === 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(updates, { a: 1, b: 0 });
    await a.client.close();
    await b.client.close();
  });

  test('a cancelled request is cancelled upstream under the id the process knows', async () => {
    const a = await connect(upstream, 'mux7', 'a');
    const controller = new AbortController();
    const slow = a.client.callTool({ name: 'sleep', arguments: { ms: 300 } }, undefined, { signal: controller.signal });
    await new Promise((r) => setTimeout(r, 50));
    controller.abort('changed my mind');
    await assert.rejects(slow);
    await new Promise((r) => setTimeout(r, 50));
    const stats = JSON.parse(textOf(await a.client.callTool({ name: 'stats', arguments: {} })));
    assert.equal(stats.cancelled.length, 1);
    // The process got its own (numeric, upstream-made) id, not the client's.
    assert.equal(typeof stats.cancelled[0], 'number');
    assert.equal(upstream.processes().find((p) => p.pool === 'mux7')?.inFlight, 0);
    await a.client.close();
  });

  test('a client that leaves mid-call: the request id stays taken until the process answers, and that answer goes nowhere', async () => {
    const init = await dispatchRaw(upstream, {
      tenant: 'mux8',
      body: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } },
    });
    const sid = String(init.headers['mcp-session-id']);
    const headers = { accept: 'application/json, text/event-stream', 'content-type': 'application/json', 'mcp-session-id': sid };
    const tool = (name: string, args: Record<string, unknown>) => ({ jsonrpc: '2.0', id: 'x', method: 'tools/call', params: { name, arguments: args } });

    // The exchange ends (its client left) long before the process answers: the answer must come after
    // the reuse below is refused, however slow the machine, so the process takes seconds, not ms.
    const exchange = new AbortController();
    const first = await upstream.dispatch({
      method: 'POST', pathAndQuery: '/mcp', headers, body: Buffer.from(JSON.stringify(tool('sleep', { ms: 3000 }))), principal: principal('mux8'), signal: exchange.signal,
    });
    assert.equal(first.statusCode, 200);
    exchange.abort();
    assert.equal(first.destroyed, true, 'the abandoned stream is released');

    const reused = await dispatchRaw(upstream, { tenant: 'mux8', headers: { 'mcp-session-id': sid }, body: tool('echo', { text: 'too early' }) });
    assert.equal(reused.status, 400);
    assert.equal((await refusalOf(reused)).error.data.code, 'GW_ERR_DUPLICATE_ID');

    await waitFor('the abandoned call answered by the process', () => upstream.processes().find((p) => p.pool === 'mux8')?.inFlight === 0, 30_000);
    const mine = messagesOf(await dispatchRaw(upstream, { tenant: 'mux8', headers: { 'mcp-session-id': sid }, body: tool('echo', { text: 'mine' }) }));
    assert.equal(mine.length, 1);
    assert.equal(textOf(mine[0].result), 'mine', 'the id is free again, and its answer is its own');
    await dispatchRaw(upstream, { method: 'DELETE', tenant: 'mux8', headers: { 'mcp-session-id': sid } });
  });

  test('answers laid out as the SDK writes them pass through with only their id replaced, whatever the id', async () => {
    const init = await dispatchRaw(upstream, {
      tenant: 'mux9',
      body: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } },
    });
    const headers = { 'mcp-session-id': String(init.headers['mcp-session-id']) };
    const text = 'a "quoted" ,"id":7} text';
    for (const [id, cr] of [[7, false], ['q"1\\', false], [8, true]] as const) {
      const answer = await dispatchRaw(upstream, {
        tenant: 'mux9', headers, body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'sdk_echo', arguments: { text, cr } } },
      });
      const events = answer.text.split('\n\n').filter(Boolean);
      assert.equal(events.length, 1, 'one event: the answer');
      assert.ok(!events[0].includes('\r'), 'no CR reaches the event stream');
      const [message] = messagesOf(answer);
      assert.deepEqual(message, { result: { content: [{ type: 'text', text }] }, jsonrpc: '2.0', id });
    }
    await dispatchRaw(upstream, { method: 'DELETE', tenant: 'mux9', headers });
  });
});
