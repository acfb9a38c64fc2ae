/**
 * Proxy hygiene, through a running gateway over real sockets: framing (no request smuggling), what
 * headers reach the upstream (no hop-by-hop, no client credentials, identity encoding), DNS-rebinding
 * protection (Host, Origin), CORS (preflight without auth, exposed headers), sealed session ids, and
 * disconnects propagated both ways.
 *
 * The upstream is the recording upstream, which shows exactly what arrived; one test uses the real
 * server-everything and the SDK client to prove sealed sessions work end to end.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { SignJWT } from 'jose';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { startRecordingUpstream, rpcResult, type RecordedRequest, type RecordingUpstream, type Reply } from '../helpers/recording-upstream.ts';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';

const JWT_SECRET = 'hygiene-test-secret-0123456789-abcdefghijkl';
const UPSTREAM_KEY = 'Bearer upstream-own-key';
const UPSTREAM_SESSION = 'up-session-5d1c9e';
const ALLOWED_ORIGIN = 'http://localhost:6274';

let up: RecordingUpstream;
let gw: TestGateway;
let base: string;
let strictBase: string;

function dispatch(rec: RecordedRequest): Reply {
  const msg = rec.json as { id?: unknown; method?: string; params?: { name?: string } } | undefined;
  if (msg?.method === 'initialize') {
    return { kind: 'json', headers: { 'mcp-session-id': UPSTREAM_SESSION }, body: { jsonrpc: '2.0', id: msg.id, result: { protocolVersion: '2025-06-18', capabilities: {}, serverInfo: { name: 'rec', version: '1' } } } };
  }
  if (msg?.method === 'tools/call' && msg.params?.name === 'stream') {
    // One event, then silence with the stream open: only a disconnect ends it.
    return { kind: 'sse', keepOpen: true, events: [{ data: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } }) }] };
  }
  if (msg?.method === 'tools/call' && msg.params?.name === 'wait') return { kind: 'never' };
  if (rec.method === 'GET') return { kind: 'sse', keepOpen: true, events: [{ data: '{"jsonrpc":"2.0","method":"notifications/ping"}' }] };
  if (msg?.id !== undefined) return rpcResult(msg.id, { ok: true });
  return { kind: 'text', status: 202 };
}

before(async () => {
  up = await startRecordingUpstream(dispatch);
  gw = await startTestGateway(`
listeners:
  - { name: main, port: 0 }
  - { name: strict, port: 0, allowedHosts: [mcp.example.com], allowedOrigins: ["https://app.example.com"] }
upstreams:
  up: { url: "\${UP}/mcp", headers: { authorization: "${UPSTREAM_KEY}" } }
routes:
  - { listener: main, path: /mcp, upstream: up, heartbeat: 0 }
  - listener: main
    path: /secure
    upstream: up
    plugins:
      - { type: token }
      - { type: jwt, keys: { secret: "\${JWT_SECRET}" }, algorithms: [HS256], issuer: https://issuer.test, audience: hygiene }
  - { listener: strict, path: /mcp, upstream: up }
log: { level: warn }
`, { env: { UP: up.url, JWT_SECRET } });
  base = gw.url('main');
  strictBase = gw.url('strict');
});

after(async () => {
  await gw?.close();
  await up?.close();
});

/** Sends exact bytes on a fresh connection; resolves with everything received until the server closes. */
function raw(url: string, bytes: string, timeoutMs = 3000): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(port), '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => { sock.destroy(); resolve(text); }, timeoutMs);
    sock.on('data', (b: Buffer) => { text += b.toString('latin1'); });
    sock.on('error', (err) => { clearTimeout(timer); if (text) resolve(text); else reject(err); });
    sock.on('close', () => { clearTimeout(timer); resolve(text); });
    sock.write(bytes);
  });
}

/** A request with full control over headers (fetch forbids Host, Connection, Keep-Alive …). */
function request(url: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders; body?: string }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The stable gateway code in a refusal body (`error.data.code`). */
async function gatewayCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { error?: { data?: { code?: string } } };
  return body.error?.data?.code;
}

const call = (id: number, method = 'tools/list', params: unknown = {}) => JSON.stringify({ jsonrpc: '2.0', id, method, params });
const json = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const method of ['DELETE', 'OPTIONS']) {
  test(`${method} with Transfer-Encoding: chunked is refused 400 GW_ERR_BAD_FRAMING and smuggles nothing`, async () => {
    const before = up.requests.length;
    const smuggled = 'GET /mcp/smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    const bytes =
      `${method} /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: ${ALLOWED_ORIGIN}\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`;
    const answer = await raw(base, bytes);
    assert.match(answer, /^HTTP\/1\.1 400 /, answer);
    const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
    assert.equal(JSON.parse(body).error.data.code, 'GW_ERR_BAD_FRAMING');
    assert.match(answer, /\r\nconnection: close\r\n/i, 'the connection is closed, so the unread body is never parsed');
    assert.equal((answer.match(/HTTP\/1\.1 /g) ?? []).length, 1, 'one answer only: the body was not run as a second request');
    await sleep(200);
    assert.equal(up.requests.length, before, 'the upstream received nothing');
    assert.ok(!up.requests.some((r) => r.path.includes('smuggled')));
  });
}

test('a DELETE with a plain Content-Length is forwarded (the framing check is not a blanket ban)', async () => {
  const a = await request(`${base}/mcp`, { method: 'DELETE', headers: { 'content-length': '0' } });
  assert.equal(a.status, 202);
  assert.equal(up.requests.at(-1)?.method, 'DELETE');
});

test('hop-by-hop headers and the client credentials never reach the upstream; it gets its own key and identity encoding', async () => {
  const a = await request(`${base}/mcp`, {
    method: 'POST',
    headers: {
      ...json,
      connection: 'keep-alive, x-hop-named',
      'x-hop-named': 'hop-named-value',
      'keep-alive': 'timeout=5, max=100',
      te: 'trailers',
      trailer: 'x-checksum',
      'proxy-authorization': 'Basic cHJveHk6cHJveHktc2VjcmV0',
      authorization: 'Bearer client-secret-token',
      cookie: 'sid=client-cookie-value',
      'accept-encoding': 'gzip, br',
      'x-end-to-end': 'kept',
      // Headers the gateway owns (identity for stdio bridges and signed identity): a client must not forge them.
      'x-mcp-gateway-tenant': 'forged-tenant',
      'x-mcp-gateway-sub': 'forged-sub',
      'x-mcp-gateway-signature': 'forged-signature',
      'mcp-protocol-version': '2025-06-18',
    },
    body: call(1),
  });
  assert.equal(a.status, 200, a.body);
  const rec = up.requests.at(-1)!;
  for (const h of ['x-hop-named', 'keep-alive', 'te', 'trailer', 'proxy-authorization', 'cookie', 'transfer-encoding']) {
    assert.equal(rec.headers[h], undefined, `${h} must not reach the upstream`);
  }
  assert.ok(!String(rec.headers.connection ?? '').includes('x-hop-named'), 'the client Connection header is not forwarded');
  assert.equal(rec.headers.authorization, UPSTREAM_KEY, 'the upstream gets its own credential from config');
  assert.equal(rec.headers['accept-encoding'], 'identity');
  assert.equal(rec.headers['x-end-to-end'], 'kept', 'end-to-end headers pass');
  assert.equal(rec.headers['mcp-protocol-version'], '2025-06-18');
  const everything = rec.rawHeaders.join('\n');
  for (const h of ['x-mcp-gateway-tenant', 'x-mcp-gateway-sub', 'x-mcp-gateway-signature']) {
    assert.equal(rec.headers[h], undefined, `${h} from the client must not reach the upstream`);
  }
  for (const secret of ['forged-tenant', 'client-secret-token', 'client-cookie-value', 'hop-named-value', 'cHJveHk6cHJveHktc2VjcmV0']) {
    assert.ok(!everything.includes(secret), `${secret} leaked upstream`);
  }
});

/** Makes the upstream answer with extra response headers for the duration of `fn`. */
async function withUpstreamHeaders(headers: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  up.respond((rec) => ({ kind: 'json', body: { jsonrpc: '2.0', id: (rec.json as { id: number }).id, result: {} }, headers }));
  try {
    await fn();
  } finally {
    up.respond(dispatch);
  }
}

test('hop-by-hop headers of the upstream response never reach the client', async () => {
  await withUpstreamHeaders({ 'keep-alive': 'timeout=1, max=7', 'proxy-authenticate': 'Basic', 'x-end-to-end': 'kept' }, async () => {
    const a = await request(`${base}/mcp`, { method: 'POST', headers: json, body: call(21) });
    assert.equal(a.status, 200);
    assert.equal(a.headers['x-end-to-end'], 'kept');
    assert.notEqual(a.headers['keep-alive'], 'timeout=1, max=7', "the upstream's keep-alive is not the client's");
    assert.equal(a.headers['proxy-authenticate'], undefined);
  });
});

test('a header the upstream names in its Connection header does not reach the client', async () => {
  await withUpstreamHeaders({ connection: 'keep-alive, x-upstream-hop', 'x-upstream-hop': 'hop-value' }, async () => {
    const a = await request(`${base}/mcp`, { method: 'POST', headers: json, body: call(22) });
    assert.equal(a.status, 200);
    assert.equal(a.headers['x-upstream-hop'], undefined);
  });
});

test('a chunked POST is forwarded with a Content-Length, not re-chunked', async () => {
  const body = call(20);
  const answer = await raw(base,
    `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
    `5\r\n${body.slice(0, 5)}\r\n${(body.length - 5).toString(16)}\r\n${body.slice(5)}\r\n0\r\n\r\n`);
  assert.match(answer, /^HTTP\/1\.1 200 /, answer);
  const rec = up.requests.at(-1)!;
  assert.equal(rec.body, body);
  assert.equal(rec.headers['content-length'], String(Buffer.byteLength(body)));
  assert.equal(rec.headers['transfer-encoding'], undefined);
});

test('Upgrade (with and without Connection: upgrade) is not forwarded', async () => {
  for (const headers of [{ upgrade: 'h2c' }, { upgrade: 'websocket', connection: 'Upgrade' }]) {
    const before = up.requests.length;
    const answer = await raw(base,
      `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}` +
      `Content-Type: application/json\r\nContent-Length: ${call(2).length}\r\n\r\n${call(2)}`, 500);
    const forwarded = up.requests.slice(before);
    // Either the gateway answers as a plain request without the header upstream, or it refuses the
    // upgrade; what must never happen is the upstream seeing an Upgrade request.
    for (const r of forwarded) assert.equal(r.headers.upgrade, undefined, `upgrade forwarded (${JSON.stringify(headers)})`);
    const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1]);
    assert.ok(status >= 200, `an answer (${JSON.stringify(headers)}): ${answer}`);
    if (status === 200) assert.equal(forwarded.length, 1, 'answered as one plain request');
  }
});

test('on an authenticated route the client token is verified but never forwarded', async () => {
  const token = await new SignJWT({ tenant_id: 'acme', scope: 'mcp' })
    .setProtectedHeader({ alg: 'HS256' }).setIssuer('https://issuer.test').setAudience('hygiene')
    .setSubject('alice').setIssuedAt().setExpirationTime('5m').sign(new TextEncoder().encode(JWT_SECRET));
  const a = await request(`${base}/secure`, { method: 'POST', headers: { ...json, authorization: `Bearer ${token}` }, body: call(3) });
  assert.equal(a.status, 200, a.body);
  const rec = up.requests.at(-1)!;
  assert.equal(rec.headers.authorization, UPSTREAM_KEY);
  assert.ok(!rec.rawHeaders.join('\n').includes(token), 'the client JWT leaked upstream');
  assert.ok(!rec.url.includes(token));
});

test('Host not allowed: 403 GW_ERR_HOST_NOT_ALLOWED before anything else; allowed names pass', async () => {
  const before = up.requests.length;
  for (const host of ['evil.example', 'evil.example:80', 'localhost.evil.example', '127.0.0.1.nip.io']) {
    const a = await request(`${base}/mcp`, { method: 'POST', headers: { ...json, host }, body: call(4) });
    assert.equal(a.status, 403, host);
    assert.equal(JSON.parse(a.body).error.data.code, 'GW_ERR_HOST_NOT_ALLOWED', host);
  }
  assert.equal(up.requests.length, before, 'refused before reaching the upstream');
  for (const host of ['localhost:9999', '127.0.0.1', '[::1]:1234', 'LOCALHOST']) {
    const a = await request(`${base}/mcp`, { method: 'POST', headers: { ...json, host }, body: call(5) });
    assert.equal(a.status, 200, `${host}: ${a.body}`);
  }
  // A listener with its own list: loopback names are no longer implied.
  const strictRefused = await request(`${strictBase}/mcp`, { method: 'POST', headers: { ...json, host: '127.0.0.1' }, body: call(6) });
  assert.equal(strictRefused.status, 403);
  assert.equal(JSON.parse(strictRefused.body).error.data.code, 'GW_ERR_HOST_NOT_ALLOWED');
  const strictOk = await request(`${strictBase}/mcp`, { method: 'POST', headers: { ...json, host: 'mcp.example.com' }, body: call(7) });
  assert.equal(strictOk.status, 200);
  // Refusing even the preflight: a rebinding page must not learn anything.
  const preflight = await request(`${base}/mcp`, { method: 'OPTIONS', headers: { host: 'evil.example', origin: ALLOWED_ORIGIN, 'access-control-request-method': 'POST' } });
  assert.equal(preflight.status, 403);
});

test('disallowed Origin: 403 GW_ERR_ORIGIN_NOT_ALLOWED, for requests and preflights', async () => {
  const before = up.requests.length;
  for (const origin of ['http://evil.example', 'http://localhost.evil.example:6274', 'null']) {
    const a = await request(`${base}/mcp`, { method: 'POST', headers: { ...json, origin }, body: call(8) });
    assert.equal(a.status, 403, origin);
    assert.equal(JSON.parse(a.body).error.data.code, 'GW_ERR_ORIGIN_NOT_ALLOWED', origin);
    assert.equal(a.headers['access-control-allow-origin'], undefined, 'no CORS grant to a refused origin');
    const pre = await request(`${base}/mcp`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
    assert.equal(pre.status, 403, `preflight from ${origin}`);
    assert.equal(JSON.parse(pre.body).error.data.code, 'GW_ERR_ORIGIN_NOT_ALLOWED');
  }
  const strict = await request(`${strictBase}/mcp`, { method: 'POST', headers: { ...json, host: 'mcp.example.com', origin: ALLOWED_ORIGIN }, body: call(9) });
  assert.equal(strict.status, 403, 'localhost origins are only a default; a configured list replaces them');
  assert.equal(up.requests.length, before);
  const ok = await request(`${strictBase}/mcp`, { method: 'POST', headers: { ...json, host: 'mcp.example.com', origin: 'https://app.example.com' }, body: call(10) });
  assert.equal(ok.status, 200);
});

test('CORS preflight from an allowed origin: 204 with allow-* headers, without auth, even on an authenticated route', async () => {
  const before = up.requests.length;
  const a = await request(`${base}/secure`, {
    method: 'OPTIONS',
    headers: { origin: ALLOWED_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-session-id' },
  });
  assert.equal(a.status, 204, a.body);
  assert.equal(a.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
  const methods = String(a.headers['access-control-allow-methods']).toUpperCase();
  for (const m of ['GET', 'POST', 'DELETE']) assert.ok(methods.includes(m), `allow-methods lists ${m}: ${methods}`);
  const allowHeaders = String(a.headers['access-control-allow-headers']).toLowerCase();
  for (const h of ['authorization', 'content-type', 'mcp-session-id']) assert.ok(allowHeaders.includes(h), `allow-headers lists ${h}`);
  assert.match(String(a.headers.vary), /origin/i);
  assert.equal(up.requests.length, before, 'a preflight never reaches the upstream');
  // The same route does require auth for the real request.
  const unauth = await request(`${base}/secure`, { method: 'POST', headers: { ...json, origin: ALLOWED_ORIGIN }, body: call(11) });
  assert.equal(unauth.status, 401);
  assert.equal(JSON.parse(unauth.body).error.data.code, 'GW_ERR_TOKEN_MISSING');
  // …and the browser may read that refusal and its challenge.
  assert.equal(unauth.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
  assert.match(String(unauth.headers['access-control-expose-headers']), /www-authenticate/i);
  // A header list the gateway cannot vouch for is not echoed.
  const odd = await request(`${base}/mcp`, { method: 'OPTIONS', headers: { origin: ALLOWED_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-a\u00ff' } });
  assert.equal(odd.status, 204);
  assert.ok(!String(odd.headers['access-control-allow-headers']).includes('x-a'));
});

test('actual responses expose mcp-session-id to an allowed origin, and carry no CORS grant without Origin', async () => {
  const init = await request(`${base}/mcp`, { method: 'POST', headers: { ...json, origin: ALLOWED_ORIGIN }, body: call(12, 'initialize') });
  assert.equal(init.status, 200);
  assert.equal(init.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
  const exposed = String(init.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/);
  assert.ok(exposed.includes('mcp-session-id'), `exposed: ${exposed}`);
  assert.ok(exposed.includes('mcp-protocol-version'));
  const stream = await request(`${base}/mcp`, { method: 'POST', headers: { ...json, origin: ALLOWED_ORIGIN }, body: call(13) });
  assert.equal(stream.headers['access-control-allow-origin'], ALLOWED_ORIGIN);
  const plain = await request(`${base}/mcp`, { method: 'POST', headers: json, body: call(14) });
  assert.equal(plain.headers['access-control-allow-origin'], undefined);
  const noRoute = await request(`${base}/nothing-here`, { headers: { origin: ALLOWED_ORIGIN } });
  assert.equal(noRoute.status, 404);
  assert.equal(noRoute.headers['access-control-allow-origin'], ALLOWED_ORIGIN, 'refusals are readable by the browser too');
});

test('the upstream mcp-session-id is sealed for the client, and the upstream gets its own id back', async () => {
  const init = await request(`${base}/mcp`, { method: 'POST', headers: json, body: call(15, 'initialize') });
  const sealed = init.headers['mcp-session-id'];
  assert.equal(typeof sealed, 'string');
  assert.notEqual(sealed, UPSTREAM_SESSION);
  assert.ok(!String(sealed).includes(UPSTREAM_SESSION));
  assert.ok(!init.body.includes(UPSTREAM_SESSION));
  const before = up.requests.length;
  const post = await request(`${base}/mcp`, { method: 'POST', headers: { ...json, 'mcp-session-id': sealed as string }, body: call(16) });
  assert.equal(post.status, 200, post.body);
  assert.equal(up.requests[before].headers['mcp-session-id'], UPSTREAM_SESSION, 'POST carries the upstream id');
  // The GET stream stays open: look at what arrived upstream, then hang up.
  const get = http.request(`${base}/mcp`, { headers: { accept: 'text/event-stream', 'mcp-session-id': sealed as string }, agent: false });
  get.on('error', () => undefined);
  get.end();
  try {
    await up.waitFor(() => up.requests.length > before + 1, 3000, 'the GET upstream');
    assert.equal(up.requests[before + 1].method, 'GET');
    assert.equal(up.requests[before + 1].headers['mcp-session-id'], UPSTREAM_SESSION, 'GET carries the upstream id');
  } finally {
    get.destroy();
  }
  const del = await request(`${base}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': sealed as string } });
  assert.equal(del.status, 202);
  assert.equal(up.requests.at(-1)?.headers['mcp-session-id'], UPSTREAM_SESSION);
});

test('with a real server and the SDK client, sealed sessions work end to end', async () => {
  let everything: RunningUpstream | undefined;
  let real: TestGateway | undefined;
  try {
    everything = await startEverything('streamableHttp');
    real = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams: { everything: { url: "${everything.url}/mcp" } }
routes: [{ listener: main, path: /mcp, upstream: everything }]
log: { level: warn }
`);
    const client = await connectClient(`${real.url()}/mcp`);
    try {
      const tools = await client.listTools();
      assert.ok(tools.tools.some((t) => t.name === 'echo'));
      const sid = (client.transport as StreamableHTTPClientTransport).sessionId!;
      assert.ok(sid && !/^[0-9a-f-]{36}$/.test(sid), `the client sees a sealed id, not the server's UUID: ${sid}`);
      const echoed = await client.callTool({ name: 'echo', arguments: { message: 'sealed' } });
      assert.match(JSON.stringify(echoed.content), /sealed/);
      const tampered = sid.slice(0, -3) + (sid.endsWith('AAA') ? 'BBB' : 'AAA');
      const res = await fetch(`${real.url()}/mcp`, { method: 'POST', headers: { ...json, 'mcp-session-id': tampered, 'mcp-protocol-version': '2025-06-18' }, body: call(1) });
      assert.equal(res.status, 404);
      assert.equal(await gatewayCode(res), 'GW_ERR_SESSION_NOT_FOUND');
      await (client.transport as StreamableHTTPClientTransport).terminateSession();
    } finally {
      await client.close();
    }
  } finally {
    await real?.close();
    await everything?.close();
  }
});

test('a client that disconnects mid-stream aborts the upstream request', async () => {
  const ac = new AbortController();
  const before = up.requests.length;
  const res = await fetch(`${base}/mcp`, { method: 'POST', headers: json, body: call(17, 'tools/call', { name: 'stream' }), signal: ac.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = res.body!.getReader();
  const first = await reader.read();
  assert.match(new TextDecoder().decode(first.value), /notifications\/progress/);
  const rec = up.requests[before];
  assert.equal(rec.aborted, false, 'the stream is open upstream');
  ac.abort();
  await up.waitFor(() => rec.aborted, 3000, 'the upstream request to be closed');
});

test('a client that disconnects before the first byte aborts the upstream request', async () => {
  const before = up.requests.length;
  const req = http.request(`${base}/mcp`, { method: 'POST', headers: json, agent: false });
  req.on('error', () => undefined);
  req.end(call(18, 'tools/call', { name: 'wait' }));
  await up.waitFor(() => up.requests.length > before, 3000, 'the request upstream');
  const rec = up.requests[before];
  req.destroy();
  await up.waitFor(() => rec.aborted, 3000, 'the upstream request to be closed');
});

test('an upstream that crashes mid-stream ends the client response', async () => {
  up.respond((rec) => (rec.method === 'POST'
    ? { kind: 'sse', hangUp: true, events: [{ data: '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}' }] }
    : dispatch(rec)));
  try {
    const res = await fetch(`${base}/mcp`, { method: 'POST', headers: json, body: call(23), signal: AbortSignal.timeout(3000) });
    assert.equal(res.status, 200);
    // The stream must end (cleanly or with an error), not hang until the client's own timeout.
    const text = await res.text().catch((err: Error) => `ended with ${err.name}`);
    assert.ok(!/TimeoutError/.test(text), 'the client response ended when the upstream went away');
  } finally {
    up.respond(dispatch);
  }
});

test('a request body cut short is not forwarded', async () => {
  const before = up.requests.length;
  await new Promise<void>((resolve) => {
    const sock = net.connect(Number(new URL(base).port), '127.0.0.1', () => {
      sock.write('POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"jsonrpc":"2.0","id":1,');
      setTimeout(() => sock.destroy(), 100);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve());
  });
  await sleep(300);
  assert.equal(up.requests.length, before);
});

test('an upstream that ends its stream ends the client response', async () => {
  up.respond((rec) => (rec.method === 'POST'
    ? { kind: 'sse', events: [{ data: '{"jsonrpc":"2.0","id":19,"result":{}}' }, { data: '{"jsonrpc":"2.0","method":"x"}', delayMs: 50 }] }
    : dispatch(rec)));
  try {
    const res = await fetch(`${base}/mcp`, { method: 'POST', headers: json, body: call(19), signal: AbortSignal.timeout(3000) });
    const text = await res.text();
    assert.match(text, /"id":19/);
    assert.match(text, /"method":"x"/);
  } finally {
    up.respond(dispatch);
  }
});
