/**
 * Requests Node's HTTP parser rejects never reach a route, yet they get a status and a stable code.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams: { u: { url: http://127.0.0.1:1 } }
routes: [{ listener: main, path: /mcp, upstream: u }]
`);
});
after(() => gw?.close());

function sendRaw(raw: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const s = net.connect(Number(new URL(gw.url()).port), '127.0.0.1', () => s.write(raw));
    s.on('data', (b) => { out += b; });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
  });
}

for (const [what, raw, status, code] of [
  ['not HTTP at all', 'GARBAGE\r\n\r\n', 400, 'GW_ERR_BAD_FRAMING'],
  ['headers over the limit', `GET /mcp HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`, 431, 'GW_ERR_HEADERS_TOO_LARGE'],
] as const) {
  test(`${what}: ${status} ${code}`, async () => {
    const out = await sendRaw(raw);
    assert.equal(Number(out.split(' ')[1]), status);
    const body = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)) as { error: { data: { code: string } } };
    assert.equal(body.error.data.code, code);
  });
}
