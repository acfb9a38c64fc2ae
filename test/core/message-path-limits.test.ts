/**
 * The message path under abuse: one caller must not be able to stall or exhaust the gateway for the
 * others, and a failing plugin or upstream must end its own exchange cleanly, never hang it.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { after, before, describe, test } from 'node:test';
import { SseFramer } from '../../gateway/messages/sse-codec.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/recording-upstream.ts';

const MISBEHAVING = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/plugins/misbehaving.ts');
const ACCEPT = 'application/json, text/event-stream';
const call = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: {} } });

describe('message path: limits and failures', () => {
  let up: RecordingUpstream;
  let gw: TestGateway;
  let sessionCounter = 0;

  before(async () => {
    up = await startRecordingUpstream((rec) => {
      const m = rec.json as { id?: number; method?: string } | undefined;
      if (rec.path === '/big-event') {
        return { kind: 'sse', events: [{ data: JSON.stringify({ jsonrpc: '2.0', id: m?.id, result: { pad: 'x'.repeat(300_000) } }) }] };
      }
      if (rec.path === '/slow') return { kind: 'json', delayMs: 600, body: { jsonrpc: '2.0', id: m?.id, result: { slow: true } } };
      if (m?.method === 'initialize') {
        return { kind: 'json', headers: { 'mcp-session-id': `up-${++sessionCounter}` }, body: { jsonrpc: '2.0', id: m.id, result: {} } };
      }
      return m?.id !== undefined ? { kind: 'json', body: { jsonrpc: '2.0', id: m.id, result: { ok: true } } } : { kind: 'text', status: 202 };
    });
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  up: { url: ${up.url} }
routes:
  - { listener: main, path: /inspected, upstream: up, maxResponseBytes: 100kb, maxRequestBytes: 1mb, bodyTimeout: 300ms, plugins: [{ type: audit, destination: log }] }
  - { listener: main, path: /plain, upstream: up, maxRequestBytes: 1mb }
  - { listener: main, path: /bad-header, upstream: up, plugins: [{ type: ${MISBEHAVING}, invalidHeader: true }] }
  - { listener: main, path: /bad-done, upstream: up, plugins: [{ type: ${MISBEHAVING}, rejectOnDone: true }] }
  - { listener: main, path: /probed, upstream: up, plugins: [{ type: ${MISBEHAVING}, probe: true }] }
`);
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const post = (p: string, body: string | object, headers: Record<string, string> = {}) =>
    fetch(gw.url() + p, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  test('an SSE event over maxResponseBytes ends the stream with a JSON-RPC error for its request', async () => {
    const res = await post('/inspected/big-event', call(21));
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.doesNotMatch(text, /xxxxxxxx/, 'the oversized event is not relayed');
    const data = /data: (.*)\n/.exec(text);
    assert.ok(data, `an error event: ${text.slice(0, 200)}`);
    const error = JSON.parse(data[1]) as { id: number; error: { data: { code: string } } };
    assert.equal(error.id, 21);
    assert.equal(error.error.data.code, 'GW_ERR_UPSTREAM_RESPONSE_TOO_LARGE');
  });

  test('framing an event costs the same whether it comes in one chunk or in 64 KiB chunks (no rescans)', () => {
    const event = Buffer.from(`data: ${'x'.repeat(8_000_000)}\n\n`);
    const cost = (chunk: number) => {
      const runs: number[] = [];
      for (let r = 0; r < 3; r++) {
        const framer = new SseFramer({ maxEventLength: 10_000_000 });
        const started = process.hrtime.bigint();
        let events = 0;
        for (let i = 0; i < event.length; i += chunk) events += framer.push(event.subarray(i, i + chunk)).length;
        runs.push(Number(process.hrtime.bigint() - started));
        assert.equal(events, 1);
      }
      return runs.sort((a, b) => a - b)[1];
    };
    const whole = cost(event.length);
    const chunked = cost(65_536);
    // A framer that rescans its buffer does ~120 passes over it here (seconds); a linear one about one.
    // The margins are wide so that a loaded machine cannot fail a linear framer.
    assert.ok(chunked < whole * 20 + 100e6, `64 KiB chunks cost ${(chunked / 1e6).toFixed(1)} ms vs ${(whole / 1e6).toFixed(1)} ms in one chunk`);
  });

  test('JSON nested 100,000 deep: 400 GW_ERR_PARSE, not a 500', async () => {
    const deep = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x","arguments":{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}}`;
    const res = await post('/inspected', deep);
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: number; data: { code: string } } };
    assert.equal(body.error.data.code, 'GW_ERR_PARSE');
    assert.equal(body.error.code, -32700);
  });

  test('a body trickled slower than bodyTimeout: 408 GW_ERR_REQUEST_TIMEOUT; a slow answer is not limited by it', async () => {
    const { port } = new URL(gw.url());
    const socket = net.connect(Number(port), '127.0.0.1');
    let answer = '';
    socket.on('data', (c) => { answer += c.toString(); });
    const closed = new Promise((r) => socket.once('close', r));
    socket.write('POST /inspected HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"jsonrpc":');
    await closed;
    assert.match(answer, /^HTTP\/1\.1 408 /);
    assert.match(answer, /GW_ERR_REQUEST_TIMEOUT/);
    const slow = await post('/inspected/slow', call(4));
    assert.equal(slow.status, 200, 'a 600 ms answer on a route with a 300 ms bodyTimeout');
    assert.equal(((await slow.json()) as { result: { slow: boolean } }).result.slow, true);
  });

  test('a body over maxRequestBytes: the client can finish sending and read its 413 (the rest is drained, not cut)', async () => {
    const { port } = new URL(gw.url());
    const body = Buffer.alloc(2_000_000, 'x');
    for (const p of ['/inspected', '/plain']) {
      // A client on a slow link: part of the body, a pause (the gateway has decided by then), the rest.
      // Closing the connection while it still writes would give it EPIPE/ECONNRESET instead of the 413.
      const socket = net.connect(Number(port), '127.0.0.1');
      let answer = '';
      let failure: Error | undefined;
      socket.on('data', (c) => { answer += c.toString(); });
      socket.on('error', (err) => { failure = err; });
      const closed = new Promise((r) => socket.once('close', r));
      socket.write(`POST ${p} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`);
      socket.write(body.subarray(0, 1_500_000));
      await new Promise((r) => setTimeout(r, 300));
      socket.end(body.subarray(1_500_000));
      await closed;
      assert.equal(failure, undefined, `${p}: the client's write failed: ${failure?.message}`);
      assert.match(answer, /^HTTP\/1\.1 413 /, p);
      assert.match(answer, /GW_ERR_BODY_TOO_LARGE/, p);
    }
    // And fetch, which sends the whole body before it reads, sees the 413 too.
    const res = await post('/plain', JSON.stringify({ pad: 'x'.repeat(3_000_000) }));
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { error: { data: { code: string } } }).error.data.code, 'GW_ERR_BODY_TOO_LARGE');
  });

  test('a plugin that sets an invalid header in onResponse: 500 GW_ERR_PLUGIN_FAILED, not a hung request', async () => {
    const res = await post('/bad-header', call(5), {});
    assert.equal(res.status, 500);
    const body = (await res.json()) as { id: number; error: { data: { code: string } } };
    assert.equal(body.error.data.code, 'GW_ERR_PLUGIN_FAILED');
    assert.equal(body.id, 5);
  });

  test('an async onDone that rejects is caught and logged, never an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const res = await post('/bad-done', call(6));
      assert.equal(res.status, 200);
      await res.text();
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(unhandled, []);
      assert.ok(gw.logs().some((l) => l.msg === 'onDone hook failed'));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('a session remembers strings, not its first exchange: requests are collectable once answered', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    globalThis.__exchangeProbe = [];
    const agent = new http.Agent({ keepAlive: false });
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = http.request(`${gw.url()}/probed`, { method: 'POST', agent, headers: { 'content-type': 'application/json', accept: ACCEPT } }, (res) => {
          assert.ok(res.headers['mcp-session-id'], 'a session was opened');
          res.resume();
          res.once('end', resolve);
        });
        req.once('error', reject);
        req.end(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'initialize', params: {} }));
      });
    }
    assert.equal(gw.gw.sessions.list().filter((s) => s.route.endsWith('/probed')).length, 20);
    let alive = 20;
    for (let round = 0; round < 10 && alive > 2; round++) {
      await new Promise((r) => setTimeout(r, 20));
      gc();
      alive = globalThis.__exchangeProbe.filter((w) => w.deref() !== undefined).length;
    }
    assert.ok(alive <= 2, `${alive} of 20 requests are still reachable after their exchanges ended`);
    agent.destroy();
  });
});
