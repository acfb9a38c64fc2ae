/**
 * SSE relay under precise control: a purpose-built upstream decides when each event exists, so the
 * tests can prove the gateway never holds a complete event back, never splits one, keeps idle streams
 * alive with heartbeats, and carries resumption through.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

/** Resolves when `release(name)` is called: the test decides when the upstream may go on. */
class Gates {
  #waiters = new Map<string, () => void>();
  #opened = new Set<string>();
  wait(name: string): Promise<void> {
    if (this.#opened.has(name)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.set(name, resolve));
  }
  release(name: string): void {
    this.#opened.add(name);
    this.#waiters.get(name)?.();
    this.#waiters.delete(name);
  }
  /** Closes a released gate again, for the next test that uses it. */
  reset(name: string): void {
    this.#opened.delete(name);
  }
}

const gates = new Gates();
const seen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders }> = [];
let closedStreams = 0;

const upstream = http.createServer(async (req, res) => {
  seen.push({ method: req.method!, url: req.url!, headers: req.headers });
  const sse = () => res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.on('close', () => { if (!res.writableFinished) closedStreams++; });
  const event = (id: number, data: unknown) => `id: ${id}\nevent: message\ndata: ${JSON.stringify(data)}\n\n`;
  if (req.url === '/gated') {
    // Event 1, then wait until the test has *received* event 1 before even writing event 2.
    sse();
    res.write(event(1, { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: 1 } }));
    await gates.wait('second');
    res.end(event(2, { jsonrpc: '2.0', id: 1, result: { ok: true } }));
  } else if (req.url === '/split') {
    // One event written in three chunks, with pauses in between, then a second event.
    sse();
    const text = event(1, { jsonrpc: '2.0', id: 1, result: { text: 'x'.repeat(50) } });
    res.write(text.slice(0, 10));
    await new Promise((r) => setTimeout(r, 150));
    res.write(text.slice(10, 40));
    await new Promise((r) => setTimeout(r, 150));
    res.write(text.slice(40));
    await gates.wait('split-end');
    res.end();
  } else if (req.url === '/idle') {
    sse();
    res.write(event(1, { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'a' } }));
    await new Promise((r) => setTimeout(r, 450));
    res.end(event(2, { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'b' } }));
  } else if (req.url === '/resumable' && req.method === 'GET') {
    // Replays the events after Last-Event-ID, as a resumable server does.
    sse();
    const last = Number(req.headers['last-event-id'] ?? 0);
    for (let i = last + 1; i <= 3; i++) res.write(event(i, { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'r', progress: i } }));
    res.end();
  } else if (req.url === '/forever') {
    sse();
    res.write(': hello\n\n');
    // Never ends: the test disconnects and the upstream must see its request aborted.
  } else if (req.url === '/closes') {
    sse();
    res.write(event(1, { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'c', progress: 1 } }));
    setTimeout(() => res.destroy(), 100);
  } else {
    res.writeHead(404).end();
  }
});

async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, pattern: RegExp, timeoutMs = 5000): Promise<string> {
  let text = '';
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(text)) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out waiting for ${pattern}; got ${JSON.stringify(text)}`);
    const chunk = await Promise.race([
      reader.read(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; got ${JSON.stringify(text)}`)), left)),
    ]);
    if (chunk.done) break;
    text += Buffer.from(chunk.value).toString();
  }
  return text;
}

describe('SSE relay', () => {
  let gw: TestGateway;
  before(async () => {
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const port = (upstream.address() as AddressInfo).port;
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  up: { url: http://127.0.0.1:${port} }
routes:
  - { listener: main, path: /raw, upstream: up, heartbeat: 100ms }
  - { listener: main, path: /inspected, upstream: up, heartbeat: 100ms, plugins: [{ type: audit, destination: log }] }
`);
  });
  after(async () => {
    await gw?.close();
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  for (const route of ['/raw', '/inspected']) {
    test(`${route}: each event reaches the client before the upstream writes the next`, async () => {
      const res = await fetch(`${gw.url()}${route}/gated`, { headers: { accept: 'text/event-stream' } });
      assert.equal(res.headers.get('x-accel-buffering'), 'no');
      assert.equal(res.headers.get('content-encoding'), null);
      const reader = res.body!.getReader();
      const first = await readUntil(reader, /"progress":1/);
      assert.match(first, /^id: 1$/m);
      gates.release('second');
      const rest = await readUntil(reader, /"id":1,"result"/);
      assert.match(rest, /^id: 2$/m);
      await reader.cancel();
      gates.reset('second');
    });

    test(`${route}: an event split across chunks is never split by a heartbeat, and arrives as soon as it is complete`, async () => {
      const res = await fetch(`${gw.url()}${route}/split`, { headers: { accept: 'text/event-stream' } });
      const reader = res.body!.getReader();
      const started = Date.now();
      if (route === '/inspected') {
        // Plugins read whole messages: the first bytes the client sees form the whole event.
        const { value } = await reader.read();
        assert.match(Buffer.from(value!).toString(), /^id: 1\nevent: message\ndata: \{.*\}\n\n$/s);
      } else {
        // Nobody reads the messages: bytes are relayed as they come (nothing is held back), and the
        // 100 ms heartbeats during the 150 ms pauses wait until the event is complete.
        const text = await readUntil(reader, /\}\n\n/);
        assert.match(text, /^id: 1\nevent: message\ndata: \{.*\}\n\n/s, `no heartbeat inside the event: ${JSON.stringify(text)}`);
      }
      assert.ok(Date.now() - started < 2000);
      gates.release('split-end');
      await reader.cancel();
      gates.reset('split-end');
    });
  }

  test('idle streams get SSE comment heartbeats between events, never inside one', async () => {
    const res = await fetch(`${gw.url()}/raw/idle`, { headers: { accept: 'text/event-stream' } });
    const text = await res.text();
    const pings = text.match(/^: ping$/gm)?.length ?? 0;
    assert.ok(pings >= 2, `expected heartbeats during 450 ms of silence with a 100 ms interval, got ${pings}`);
    // Every block is either a heartbeat or a whole event.
    for (const block of text.split('\n\n').filter(Boolean)) {
      assert.ok(block === ': ping' || /^id: \d\nevent: message\ndata: \{.*\}$/s.test(block), `unexpected block ${JSON.stringify(block)}`);
    }
  });

  test('resumption: Last-Event-ID reaches the upstream and the replay reaches the client', async () => {
    const res = await fetch(`${gw.url()}/inspected/resumable`, { headers: { accept: 'text/event-stream', 'last-event-id': '1' } });
    const text = await res.text();
    assert.equal(seen.at(-1)!.headers['last-event-id'], '1');
    assert.doesNotMatch(text, /"progress":1\b/);
    assert.match(text, /^id: 2$/m);
    assert.match(text, /^id: 3$/m);
  });

  test('a client that disconnects aborts the upstream request', async () => {
    const before = closedStreams;
    const controller = new AbortController();
    const res = await fetch(`${gw.url()}/raw/forever`, { headers: { accept: 'text/event-stream' }, signal: controller.signal });
    const reader = res.body!.getReader();
    await readUntil(reader, /hello/);
    controller.abort();
    const deadline = Date.now() + 3000;
    while (closedStreams === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(closedStreams, before + 1, 'the upstream saw its response closed');
  });

  test('an upstream reset mid-stream breaks the client response off; it never looks complete', async () => {
    for (const prefix of ['/inspected', '/raw']) {
      const res = await fetch(`${gw.url()}${prefix}/closes`, { headers: { accept: 'text/event-stream' } });
      const reader = res.body!.getReader();
      assert.match(await readUntil(reader, /"progress":1/), /"progress":1/, `${prefix}: the events before the reset arrive`);
      // A clean end would resolve { done: true }; a reset must surface as an error.
      await assert.rejects(async () => {
        for (;;) if ((await reader.read()).done) return;
      }, `${prefix}: the reset reaches the client`);
    }
  });
});
