/**
 * Request hygiene before any route or plugin, over real sockets: a header that must appear once
 * (Host, Authorization, Origin, Mcp-Session-Id …) appearing twice is refused with 400
 * GW_ERR_DUPLICATE_HEADER, because Node would silently keep one of them (or join them) and another
 * layer may have read the other. Raw bytes are sent, since fetch and http.request merge repeats.
 *
 * Also the listener's Host/Origin globs (gateway/wildcard.ts): same meaning as before, no backtracking.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { ListenerConfig } from '../../config/schema.ts';
import { ListenerPolicy } from '../../gateway/listener-policy.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/recording-upstream.ts';
import { GATEWAY_ENV, authPlugins, tokenFor } from '../helpers/hs256-auth.ts';

let up: RecordingUpstream;
let gw: TestGateway;
let base: string;
let token: string;

before(async () => {
  up = await startRecordingUpstream();
  gw = await startTestGateway(`
listeners:
  - { name: main, port: 0 }
upstreams:
  up: { url: "\${UP}/mcp" }
routes:
  - { listener: main, path: /open, upstream: up, heartbeat: 0 }
  - { listener: main, path: /secure, upstream: up, heartbeat: 0, plugins: ${authPlugins()} }
log: { level: warn }
`, { env: { ...GATEWAY_ENV, UP: up.url } });
  base = gw.url('main');
  token = await tokenFor('acme');
});

after(async () => {
  await gw?.close();
  await up?.close();
});

interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/** Sends exact bytes on a fresh connection; resolves with the answer once the server closes or it is complete. */
function raw(bytes: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(new URL(base).port), '127.0.0.1');
    let text = '';
    const done = () => {
      const split = text.indexOf('\r\n\r\n');
      const head = split < 0 ? text : text.slice(0, split);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), head, body: split < 0 ? '' : text.slice(split + 4) });
    };
    sock.on('data', (b: Buffer) => {
      text += b.toString('latin1');
      // A keep-alive answer is complete once Content-Length bytes of body arrived.
      const split = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, split))?.[1];
      if (split >= 0 && length !== undefined && Buffer.byteLength(text.slice(split + 4), 'latin1') >= Number(length)) sock.end();
    });
    sock.on('error', (err) => (text ? done() : reject(err)));
    sock.on('close', done);
    sock.write(bytes);
  });
}

const body = JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/list', params: {} });

/** A POST of one JSON-RPC request with these extra header lines (each `Name: value`, repeats kept). */
function post(path: string, lines: string[]): string {
  return [
    `POST ${path} HTTP/1.1`,
    ...(lines.some((l) => /^host:/i.test(l)) ? [] : ['Host: 127.0.0.1']),
    'Content-Type: application/json',
    'Accept: application/json, text/event-stream',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...lines,
    '',
    body,
  ].join('\r\n');
}

/** Asserts a GW_ERR_DUPLICATE_HEADER refusal naming `header`, in the JSON-RPC error shape, upstream untouched. */
async function assertDuplicateRefused(bytes: string, header: string, secrets: string[] = []): Promise<void> {
  const before = up.requests.length;
  const a = await raw(bytes);
  assert.equal(a.status, 400, a.head);
  assert.match(a.head, /\r\ncontent-type: application\/json/i);
  assert.match(a.head, /\r\nconnection: close/i, 'the connection is closed after the refusal');
  const msg = JSON.parse(a.body) as { jsonrpc: string; id: unknown; error: { code: number; message: string; data: { code: string; header: string } } };
  assert.equal(msg.jsonrpc, '2.0');
  assert.equal(msg.id, null);
  assert.equal(msg.error.code, -32600);
  assert.equal(msg.error.data.code, 'GW_ERR_DUPLICATE_HEADER');
  assert.equal(msg.error.data.header, header);
  for (const s of secrets) assert.ok(!a.body.includes(s), 'header values are never echoed');
  assert.equal(up.requests.length, before, 'nothing reached the upstream');
}

test('control: the same requests with each header once are forwarded', async () => {
  const a = await raw(post('/secure', [
    `Authorization: Bearer ${token}`, 'Origin: http://localhost:6274', 'Mcp-Protocol-Version: 2025-06-18',
  ]));
  assert.equal(a.status, 200, a.head + a.body);
  assert.equal((await raw(post('/open', ['Host: localhost']))).status, 200);
});

test('two Authorization headers are refused 400 GW_ERR_DUPLICATE_HEADER, even when the first one is valid', async () => {
  // Node keeps the first and drops the second: before this check, the valid first token was accepted.
  await assertDuplicateRefused(post('/secure', [`Authorization: Bearer ${token}`, 'Authorization: Bearer other-token']), 'authorization', [token, 'other-token']);
  await assertDuplicateRefused(post('/secure', [`Authorization: Bearer ${token}`, `authorization: Bearer ${token}`]), 'authorization', [token]);
  // Also where no plugin reads it: the credential is ambiguous for whatever sits in front or behind.
  await assertDuplicateRefused(post('/open', ['Authorization: Bearer a', 'Authorization: Bearer b']), 'authorization');
});

test('two Host headers are refused 400 (RFC 9112 §3.2), even when both are allowed hosts', async () => {
  await assertDuplicateRefused(post('/open', ['Host: 127.0.0.1', 'Host: evil.example']), 'host');
  await assertDuplicateRefused(post('/open', ['Host: localhost', 'Host: localhost']), 'host');
});

test('repeated Origin, Mcp-Session-Id, Mcp-Protocol-Version and Proxy-Authorization are refused too', async () => {
  // Joined, these two would read "http://localhost:1, https://evil.example", which `http://localhost:*` matches.
  await assertDuplicateRefused(post('/open', ['Origin: http://localhost:1', 'Origin: https://evil.example']), 'origin');
  await assertDuplicateRefused(post('/open', ['Mcp-Session-Id: s1', 'Mcp-Session-Id: s2']), 'mcp-session-id');
  await assertDuplicateRefused(post('/open', ['Mcp-Protocol-Version: 2025-06-18', 'Mcp-Protocol-Version: 2025-03-26']), 'mcp-protocol-version');
  await assertDuplicateRefused(post('/open', ['Proxy-Authorization: Basic YTpi', 'Proxy-Authorization: Basic Yzpk']), 'proxy-authorization');
});

test('repeats of list-valued headers stay legal (RFC 9110 §5.3)', async () => {
  const a = await raw(post('/open', ['Accept-Encoding: gzip', 'Accept-Encoding: identity', 'X-Forwarded-For: 10.0.0.1', 'X-Forwarded-For: 10.0.0.2']));
  assert.equal(a.status, 200, a.head + a.body);
});

// Listener globs: unit tests of ListenerPolicy (what `entry` calls for Host and Origin).

const listener = (extra: Partial<ListenerConfig>): ListenerConfig => ({ name: 'l', host: '127.0.0.1', port: 0, ...extra } as ListenerConfig);
const withHost = (host: string) => ({ headers: { host } }) as IncomingMessage;

test('listener globs: * wildcards, ASCII case ignored, ? literal, the port ignored', () => {
  const p = new ListenerPolicy(listener({ allowedHosts: ['*.example.com', 'mcp.test'], allowedOrigins: ['http://localhost:*', 'https://App.example.com'] }), 3001);
  assert.equal(p.checkHost(withHost('api.example.com:8443')), undefined);
  assert.equal(p.checkHost(withHost('API.Example.COM')), undefined);
  assert.equal(p.checkHost(withHost('MCP.test')), undefined);
  assert.match(p.checkHost(withHost('example.com'))!, /not allowed/);
  assert.match(p.checkHost(withHost('mcp.test.evil'))!, /not allowed/);
  assert.ok(p.originAllowed('http://localhost:6274'));
  assert.ok(p.originAllowed('https://app.EXAMPLE.com'));
  assert.ok(!p.originAllowed('https://app.example.com.evil'));
  assert.ok(!p.originAllowed('http://localhost'), 'the colon is literal');
  const q = new ListenerPolicy(listener({ allowedHosts: ['a?c'] }), 3001);
  assert.equal(q.checkHost(withHost('a?c')), undefined);
  assert.match(q.checkHost(withHost('abc'))!, /not allowed/, '? is not a wildcard in listener globs');
});

test('a many-star host glob cannot stall the Host check on a long Host header', { timeout: 20_000 }, async () => {
  // The regex `^.*\..*\..*\..*\.example\.org$` took a few hundred milliseconds per 200-character Host
  // (these 100 took about a minute), and a header may hold kilobytes; now all of them take
  // milliseconds. The test yields between checks so that its timeout can fire.
  const p = new ListenerPolicy(listener({ allowedHosts: ['*.*.*.*.example.org'] }), 3001);
  for (let i = 0; i < 100; i++) {
    assert.match(p.checkHost(withHost('.'.repeat(200 + i)))!, /not allowed/);
    assert.equal(p.checkHost(withHost(`${'a.'.repeat(100 + i)}example.org`)), undefined);
    await yieldToEventLoop();
  }
});
