/**
 * An upstream that closes a kept-alive connection just as the gateway sends on it (the race every
 * keep-alive client meets when an upstream's idle timeout fires): the request never reached the
 * upstream, so the gateway sends it again, once, on a new connection, on routes (http-proxy-3) and on
 * its own calls (translators, federation members). The upstream here answers the first request of
 * each connection and drops the connection on the second, so the race happens on every reuse.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { test } from 'node:test';
import { startTestGateway } from '../helpers/gateway.ts';

async function startDroppingUpstream(): Promise<{ url: string; answered: () => number; dropped: () => number; close(): Promise<void> }> {
  const served = new WeakMap<Socket, number>();
  let answered = 0;
  let dropped = 0;
  const server = http.createServer((req, res) => {
    const n = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, n);
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (n > 1) {
        dropped++;
        req.socket.destroy();
        return;
      }
      answered++;
      const msg = JSON.parse(body || '{}') as { id?: unknown; method?: string };
      if (msg.id === undefined) return void res.writeHead(202).end();
      const result = msg.method === 'initialize'
        ? { protocolVersion: '2025-11-25', capabilities: { tools: {} }, serverInfo: { name: 'dropper', version: '1' } }
        : msg.method === 'tools/list' ? { tools: [{ name: 'ok', inputSchema: { type: 'object' } }] } : { content: [{ type: 'text', text: `answered ${msg.method}` }] };
      const text = JSON.stringify({ jsonrpc: '2.0', id: msg.id, result });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'keep-alive' }).end(text);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    answered: () => answered,
    dropped: () => dropped,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const rpc = (url: string, id: number, method: string, session?: string) => fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...(session ? { 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' } : {}) },
  body: JSON.stringify({ jsonrpc: '2.0', id, method, params: method === 'initialize' ? { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } : { name: 'ok' } }),
});

test('a route: the request lost to a closed kept-alive connection is sent again, once', async (t) => {
  const up = await startDroppingUpstream();
  t.after(() => up.close());
  const gw = await startTestGateway(`
listeners: [{ name: l, port: 0 }]
upstreams: { u: { url: ${up.url} } }
routes: [{ listener: l, path: /mcp, upstream: u }]
`);
  t.after(() => gw.close());
  for (let i = 1; i <= 3; i++) {
    const res = await rpc(`${gw.url('l')}/mcp`, i, 'tools/call');
    assert.equal(res.status, 200, `call ${i}`);
    assert.equal((await res.json() as { id: number }).id, i);
  }
  assert.equal(up.answered(), 3);
  assert.ok(up.dropped() >= 1, 'the race did happen');
});

test('a federation member: its session opens and its calls go through despite the same race', async (t) => {
  const up = await startDroppingUpstream();
  t.after(() => up.close());
  const gw = await startTestGateway(`
listeners: [{ name: l, port: 0 }]
upstreams:
  u: { url: ${up.url} }
  fed: { federation: { prefix: always, members: { u: {} } } }
routes: [{ listener: l, path: /mcp, upstream: fed }]
`);
  t.after(() => gw.close());
  const url = `${gw.url('l')}/mcp`;
  const init = await rpc(url, 0, 'initialize');
  const session = init.headers.get('mcp-session-id')!;
  await init.text();
  const list = await rpc(url, 1, 'tools/list', session);
  assert.deepEqual((await list.json() as { result: { tools: Array<{ name: string }> } }).result.tools.map((x) => x.name), ['u__ok']);
  assert.ok(up.dropped() >= 1, 'the race did happen');
  assert.ok(!gw.logText().includes('failed ('), 'the member was never reported failing');
});
