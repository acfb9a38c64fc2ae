/**
 * The gateway's own refusals, through a running gateway over real sockets: every failure is answered
 * (never dropped) with the right HTTP status and a JSON-RPC error body whose `data.code` is a stable
 * `GW_ERR_…` code and whose `id` is the request's id when the request was JSON-RPC. Upstream 4xx are
 * not refusals: they pass through unchanged.
 *
 * The upstream is the recording upstream (test/helpers/recording-upstream.ts): failures on demand, and
 * proof of what did (or did not) reach it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startRecordingUpstream, rpcResult, type RecordedRequest, type RecordingUpstream, type Reply } from '../helpers/recording-upstream.ts';
import { freePort } from '../helpers/upstreams.ts';

let up: RecordingUpstream;
let gw: TestGateway;
let base: string;

const UPSTREAM_SESSION = 'upstream-session-7f3a';

/** Answers by path, so one upstream can be fast, slow, failing or silent. */
function dispatch(rec: RecordedRequest): Reply {
  const status = /\/status\/(\d{3})$/.exec(rec.path);
  if (status) {
    const code = Number(status[1]);
    if (rec.query.get('type') === 'text') return { kind: 'text', status: code, body: `upstream says ${code}`, headers: { 'x-upstream': 'yes' } };
    return { kind: 'json', status: code, headers: { 'x-upstream': 'yes' }, body: { jsonrpc: '2.0', id: null, error: { code: -32600, message: `upstream ${code}` } } };
  }
  if (rec.path.startsWith('/slow')) return { kind: 'json', delayMs: 3000, body: { jsonrpc: '2.0', id: (rec.json as { id?: unknown })?.id ?? null, result: {} } };
  if (rec.path === '/sse' && rec.method === 'GET') {
    return { kind: 'sse', keepOpen: true, events: [{ event: 'endpoint', data: '/message?sessionId=legacy-abc' }] };
  }
  if (rec.path === '/message') return { kind: 'never' };
  if (rec.path.endsWith('/hangup')) return { kind: 'close' };
  const id = (rec.json as { id?: unknown } | undefined)?.id ?? null;
  if (rec.path.endsWith('/truncated')) {
    // Promises 100 bytes, sends 24, hangs up: an upstream that crashed while answering.
    return { kind: 'raw', bytes: 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"jsonrpc":"2.0","id":1,' };
  }
  if (rec.path.endsWith('/big')) return rpcResult(id, { pad: 'z'.repeat(5000) });
  if (rec.path.endsWith('/badjson')) return { kind: 'text', status: 200, headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"result":' };
  if (rec.path.endsWith('/quiet')) return { kind: 'sse', keepOpen: true, events: [{ data: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'hi' } }) }] };
  if (Array.isArray(rec.json)) {
    const answers = rec.json.filter((m) => m.id !== undefined).map((m) => ({ jsonrpc: '2.0', id: m.id, result: { ok: true } }));
    return answers.length ? { kind: 'json', body: answers } : { kind: 'text', status: 202 };
  }
  const msg = rec.json as { id?: unknown; method?: string } | undefined;
  if (msg?.method === 'initialize') {
    return { kind: 'json', headers: { 'mcp-session-id': UPSTREAM_SESSION }, body: { jsonrpc: '2.0', id: msg.id, result: { protocolVersion: '2025-06-18', capabilities: {}, serverInfo: { name: 'rec', version: '1' } } } };
  }
  if (msg?.id !== undefined) return rpcResult(msg.id, { ok: true });
  return { kind: 'text', status: 202 };
}

before(async () => {
  up = await startRecordingUpstream(dispatch);
  const dead = await freePort();
  gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  up: { url: "\${UP}/mcp" }
  slow: { url: "\${UP}/slow", timeouts: { firstByte: 200ms } }
  idle: { url: "\${UP}/mcp", timeouts: { idle: 300ms } }
  dead: { url: "http://127.0.0.1:\${DEAD}/mcp", timeouts: { connect: 2s } }
  legacy: { url: "\${UP}" }
routes:
  - { listener: main, path: /mcp, upstream: up, maxRequestBytes: 1kb }
  - { listener: main, path: /slow, upstream: slow }
  - { listener: main, path: /dead, upstream: dead }
  - { listener: main, path: /audited, upstream: up, maxResponseBytes: 2kb, plugins: [{ type: audit, destination: log }] }
  - { listener: main, path: /idle, upstream: idle, heartbeat: 0 }
  - { listener: main, path: /legacy, upstream: legacy, legacyPostTimeout: 300ms, heartbeat: 0 }
log: { level: warn }
`, { env: { UP: up.url, DEAD: String(dead) } });
  base = gw.url();
});

after(async () => {
  await gw?.close();
  await up?.close();
});

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, headers: res.headers, text, json };
}

/** Asserts the one refusal shape: a JSON-RPC error with the gateway code in `data.code`. */
function assertRefusal(a: Answer, status: number, code: string, id: string | number | null, rpcCode?: number): void {
  assert.equal(a.status, status, `status; body: ${a.text}`);
  assert.match(a.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(a.json?.jsonrpc, '2.0');
  assert.equal(a.json.id, id, 'the error carries the request id');
  assert.equal(a.json.error?.data?.code, code);
  assert.equal(typeof a.json.error.message, 'string');
  assert.ok(a.json.error.message.length > 0);
  if (rpcCode !== undefined) assert.equal(a.json.error.code, rpcCode);
}

/** The stable gateway code in a refusal body (`error.data.code`). */
async function gatewayCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as { error?: { data?: { code?: string } } };
  return body.error?.data?.code;
}

const call = (id: string | number, method = 'tools/list') => ({ jsonrpc: '2.0', id, method, params: {} });
const seen = (pathPrefix: string) => up.requests.filter((r) => r.path.startsWith(pathPrefix));

test('a working round trip first (so the refusals below are not a broken setup)', async () => {
  const a = await post('/mcp', call(1));
  assert.equal(a.status, 200);
  assert.deepEqual(a.json, { jsonrpc: '2.0', id: 1, result: { ok: true } });
});


test('upstream unreachable: 502 GW_ERR_UPSTREAM_UNREACHABLE with the request id, at once', async () => {
  const started = Date.now();
  assertRefusal(await post('/dead', call(41)), 502, 'GW_ERR_UPSTREAM_UNREACHABLE', 41);
  assert.ok(Date.now() - started < 1000, 'a refused connection is known at once; no need to wait for timeouts.connect');
  assertRefusal(await post('/dead', call('req-"quoted"')), 502, 'GW_ERR_UPSTREAM_UNREACHABLE', 'req-"quoted"');
  // A batch has no single id; a notification has none.
  assertRefusal(await post('/dead', [call(1), call(2)]), 502, 'GW_ERR_UPSTREAM_UNREACHABLE', null);
  const get = await fetch(`${base}/dead`, { headers: { accept: 'text/event-stream' } });
  assert.equal(get.status, 502);
  assert.equal(await gatewayCode(get), 'GW_ERR_UPSTREAM_UNREACHABLE');
});

test('an upstream that hangs up without answering: 502 GW_ERR_UPSTREAM_UNREACHABLE, not a hung client', async () => {
  const res = await fetch(`${base}/mcp/hangup`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call(42)), signal: AbortSignal.timeout(3000),
  });
  const json = (await res.json()) as { id: unknown; error: { data: { code: string } } };
  assert.equal(res.status, 502);
  assert.equal(json.error.data.code, 'GW_ERR_UPSTREAM_UNREACHABLE');
  assert.equal(json.id, 42);
});

test('upstream slower than timeouts.firstByte: 504 GW_ERR_UPSTREAM_TIMEOUT, and the upstream call is abandoned', async () => {
  const before = seen('/slow').length;
  const started = Date.now();
  const a = await post('/slow', call(7, 'tools/call'));
  const elapsed = Date.now() - started;
  assertRefusal(a, 504, 'GW_ERR_UPSTREAM_TIMEOUT', 7);
  assert.ok(elapsed >= 180 && elapsed < 2000, `answered after ${elapsed}ms, expected ~200ms`);
  await up.waitFor(() => seen('/slow').length > before, 2000, 'the slow request');
  const rec = seen('/slow').at(-1)!;
  await up.waitFor(() => rec.aborted, 2000, 'the gateway to abandon the upstream request');
});

test('body over maxRequestBytes, announced by Content-Length: 413 GW_ERR_BODY_TOO_LARGE, nothing forwarded', async () => {
  const before = up.requests.length;
  // Headers only: the gateway must refuse on the declared length without reading the body.
  const answer = await new Promise<{ status: number; body: string; connection?: string }>((resolve, reject) => {
    const req = http.request(`${base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': '50000' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => { resolve({ status: res.statusCode!, body, connection: res.headers.connection }); req.destroy(); });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
  assert.equal(answer.status, 413);
  const json = JSON.parse(answer.body);
  assert.equal(json.error.data.code, 'GW_ERR_BODY_TOO_LARGE');
  assert.equal(answer.connection, 'close', 'the unread body must not be parsed as the next request');
  assert.equal(up.requests.length, before);
});

test('body over maxRequestBytes, sent chunked: 413 GW_ERR_BODY_TOO_LARGE, nothing forwarded', async () => {
  const before = up.requests.length;
  const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(`${base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => { resolve({ status: res.statusCode!, body }); req.destroy(); });
    });
    req.on('error', (err) => { if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err); });
    const chunk = `{"jsonrpc":"2.0","id":1,"method":"x","params":{"pad":"${'a'.repeat(400)}"`;
    for (let i = 0; i < 4; i++) req.write(chunk); // 1.6 kB > 1 kB, never ended: the cap alone must trigger
  });
  assert.equal(answer.status, 413);
  assert.equal(JSON.parse(answer.body).error.data.code, 'GW_ERR_BODY_TOO_LARGE');
  assert.equal(up.requests.length, before);
});

test('a body just under maxRequestBytes passes', async () => {
  const body = JSON.stringify({ ...call(3), params: { pad: 'b'.repeat(900) } });
  assert.ok(Buffer.byteLength(body) <= 1000);
  const a = await post('/mcp', body);
  assert.equal(a.status, 200);
  assert.equal(up.requests.at(-1)!.body, body, 'forwarded byte for byte');
});

test('no route: 404 GW_ERR_NO_ROUTE', async () => {
  const before = up.requests.length;
  const a = await post('/nowhere', call(5));
  assert.equal(a.status, 404);
  assert.equal(a.json.error.data.code, 'GW_ERR_NO_ROUTE');
  const prefixOnly = await fetch(`${base}/mcpx`);
  assert.equal(prefixOnly.status, 404, '/mcpx is not under the /mcp prefix');
  assert.equal(await gatewayCode(prefixOnly), 'GW_ERR_NO_ROUTE');
  assert.equal(up.requests.length, before);
});

test('malformed JSON on a route that inspects messages: 400 GW_ERR_PARSE (-32700), upstream receives nothing', async () => {
  const before = up.requests.length;
  assertRefusal(await post('/audited', '{"jsonrpc":"2.0","id":1,"method":'), 400, 'GW_ERR_PARSE', null, -32700);
  assertRefusal(await post('/audited', '[]'), 400, 'GW_ERR_INVALID_REQUEST', null, -32600);
  assertRefusal(await post('/audited', '"just a string"'), 400, 'GW_ERR_INVALID_REQUEST', null, -32600);
  assert.equal(up.requests.length, before, 'nothing reached the upstream');
  // The same route works with a valid body.
  const ok = await post('/audited', call(9));
  assert.equal(ok.status, 200);
  assert.equal(ok.json.id, 9);
});

test('a batch element that is not JSON-RPC is answered by the gateway, the rest is forwarded', async () => {
  const a = await post('/audited', [{ hello: 'world', id: 3 }, call(4)]);
  assert.equal(a.status, 200);
  assert.ok(Array.isArray(a.json), a.text);
  const byId = new Map((a.json as any[]).map((m) => [m.id, m]));
  assert.equal(byId.get(4)?.result?.ok, true);
  assert.equal(byId.get(3)?.error?.data?.code, 'GW_ERR_INVALID_REQUEST');
  const forwarded = up.requests.at(-1)!.json as unknown[];
  assert.deepEqual(forwarded, [call(4)], 'only the valid element went upstream');
});

test('on a route without message plugins, bytes pass through unparsed (the upstream decides)', async () => {
  const a = await post('/mcp/status/400', '{"not json');
  assert.equal(a.status, 400);
  assert.equal(up.requests.at(-1)!.body, '{"not json');
});

for (const status of [400, 404, 405, 409]) {
  test(`upstream ${status} passes through (status, headers and JSON body), with and without message plugins`, async () => {
    const get = await fetch(`${base}/mcp/status/${status}`, { headers: { accept: 'text/event-stream' } });
    assert.equal(get.status, status, 'GET too (the SDK client relies on 405 for GET)');
    assert.equal(get.headers.get('x-upstream'), 'yes');
    await get.body?.cancel();
    for (const prefix of ['/mcp', '/audited']) {
      const json = await post(`${prefix}/status/${status}`, call(1));
      assert.equal(json.status, status, `${prefix}: ${json.text}`);
      assert.equal(json.headers.get('x-upstream'), 'yes');
      assert.deepEqual(json.json, { jsonrpc: '2.0', id: null, error: { code: -32600, message: `upstream ${status}` } });
      const text = await post(`${prefix}/status/${status}?type=text`, call(1));
      assert.equal(text.status, status);
      if (prefix === '/mcp') {
        assert.equal(text.text, `upstream says ${status}`);
        assert.match(text.headers.get('content-type') ?? '', /^text\/plain/);
      } else {
        // A plugin reads messages here and cannot read text/plain: the status stays, the body is the
        // gateway's (it could carry anything the plugins would have filtered).
        assertRefusal(text, status, 'GW_ERR_UPSTREAM_UNINSPECTABLE', 1);
      }
    }
  });
}

test('upstream JSON over maxResponseBytes on a route that inspects responses: 502 GW_ERR_UPSTREAM_RESPONSE_TOO_LARGE', async () => {
  assertRefusal(await post('/audited/big', call(31)), 502, 'GW_ERR_UPSTREAM_RESPONSE_TOO_LARGE', 31);
  // Without message plugins the body is streamed, not buffered, so no cap applies.
  const streamed = await post('/mcp/big', call(32));
  assert.equal(streamed.status, 200);
  assert.equal(streamed.json.result.pad.length, 5000);
});

test('malformed upstream JSON on a route that inspects responses: 502 GW_ERR_UPSTREAM_BAD_RESPONSE', async () => {
  assertRefusal(await post('/audited/badjson', call(33)), 502, 'GW_ERR_UPSTREAM_BAD_RESPONSE', 33);
});


test('an upstream that dies mid-body on a route that inspects responses: 502, not a hung client', async () => {
  const res = await fetch(`${base}/audited/truncated`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call(35)), signal: AbortSignal.timeout(3000),
  });
  assert.equal(res.status, 502);
  const body = (await res.json()) as { id: unknown; error: { data: { code: string } } };
  assert.match(body.error.data.code, /^GW_ERR_UPSTREAM_(UNREACHABLE|BAD_RESPONSE)$/);
  assert.equal(body.id, 35);
});

test('an upstream that dies mid-body on a pass-through route: the client response is broken off, not left hanging', async () => {
  const started = Date.now();
  const res = await fetch(`${base}/mcp/truncated`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(call(36)), signal: AbortSignal.timeout(3000),
  });
  assert.equal(res.status, 200, 'the head was already relayed');
  const outcome = await res.text().then(() => 'complete', (err: Error) => err.name);
  assert.notEqual(outcome, 'complete', 'a truncated body must not look complete');
  assert.notEqual(outcome, 'TimeoutError', 'the client must not wait for bytes that will never come');
  assert.ok(Date.now() - started < 2000);
});

test('timeouts.idle ends a silent SSE stream (its head is already sent, so it is ended, not replaced)', async () => {
  const started = Date.now();
  const res = await fetch(`${base}/idle/quiet`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify(call(34)), signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  const text = await res.text();
  const elapsed = Date.now() - started;
  assert.match(text, /notifications\/message/, 'the event before the silence arrived');
  assert.ok(elapsed >= 250 && elapsed < 3000, `ended after ${elapsed}ms, expected ~300ms`);
});

async function initialize(path = '/mcp'): Promise<string> {
  const a = await post(path, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  assert.equal(a.status, 200);
  const sid = a.headers.get('mcp-session-id');
  assert.ok(sid, 'a session id is returned');
  return sid;
}

test('a tampered, foreign or other-route Mcp-Session-Id: 404 GW_ERR_SESSION_NOT_FOUND, nothing forwarded', async () => {
  const sid = await initialize('/mcp');
  const ok = await post('/mcp', call(2), { 'mcp-session-id': sid });
  assert.equal(ok.status, 200, 'the real id works');
  // Flip one character in the middle of the sealed value.
  const i = Math.floor(sid.length / 2);
  const tampered = sid.slice(0, i) + (sid[i] === 'A' ? 'B' : 'A') + sid.slice(i + 1);
  const other = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams: { up: { url: "${up.url}/mcp" } }
routes: [{ listener: main, path: /mcp, upstream: up }]
log: { level: warn }
`);
  let foreign: string;
  try {
    const res = await fetch(`${other.url()}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} }),
    });
    await res.text();
    foreign = res.headers.get('mcp-session-id')!;
    assert.ok(foreign);
  } finally {
    await other.close();
  }
  const before = up.requests.length;
  for (const [what, value] of [
    ['tampered', tampered],
    ['sealed by another gateway', foreign],
    ['the upstream id itself', UPSTREAM_SESSION],
    ['garbage', 'x'.repeat(80)],
  ] as const) {
    const a = await post('/mcp', call(11), { 'mcp-session-id': value });
    assert.equal(a.status, 404, what);
    assert.equal(a.json?.error?.data?.code, 'GW_ERR_SESSION_NOT_FOUND', what);
    assert.equal(a.json.error.code, -32001);
    assert.equal(a.json.id, 11, `${what}: the error carries the request id`);
  }
  // Sealed for /mcp, presented on /audited (same upstream): bound to its route.
  const cross = await post('/audited', call(12), { 'mcp-session-id': sid });
  assert.equal(cross.status, 404);
  assert.equal(cross.json?.error?.data?.code, 'GW_ERR_SESSION_NOT_FOUND');
  const del = await fetch(`${base}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': tampered } });
  assert.equal(del.status, 404);
  assert.equal(await gatewayCode(del), 'GW_ERR_SESSION_NOT_FOUND');
  assert.equal(up.requests.length, before, 'none of them reached the upstream');
});

/** Reads an SSE response until `pattern` appears in the text; returns the text so far. */
async function readUntil(res: Response, pattern: RegExp, timeoutMs = 3000): Promise<string> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    while (!pattern.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  return text;
}

test('legacy SSE: a POST the upstream never answers gets 504 after legacyPostTimeout', async () => {
  const stream = new AbortController();
  const res = await fetch(`${base}/legacy/sse`, { headers: { accept: 'text/event-stream' }, signal: stream.signal });
  try {
    assert.equal(res.status, 200);
    const text = await readUntil(res, /event: endpoint\ndata: [^\n]+\n\n/);
    const endpoint = /data: ([^\n]+)/.exec(text)?.[1];
    assert.ok(endpoint, `an endpoint event: ${text}`);
    assert.ok(endpoint.startsWith('/legacy/message?sessionId='), `rewritten under the route: ${endpoint}`);
    assert.ok(!endpoint.includes('legacy-abc'), 'the upstream session id is sealed');
    const started = Date.now();
    const a = await post(endpoint, call(21, 'tools/call'));
    const elapsed = Date.now() - started;
    assertRefusal(a, 504, 'GW_ERR_UPSTREAM_TIMEOUT', 21);
    assert.ok(elapsed >= 280 && elapsed < 2500, `answered after ${elapsed}ms, expected ~300ms`);
    const posted = up.requests.filter((r) => r.path === '/message').at(-1);
    assert.equal(posted?.query.get('sessionId'), 'legacy-abc', 'the upstream got its own endpoint back');
    // A POST to a legacy endpoint that was never handed out is refused like an unknown session.
    const forged = await post('/legacy/message?sessionId=legacy-abc', call(22));
    assert.equal(forged.status, 404);
    assert.equal(forged.json.error.data.code, 'GW_ERR_SESSION_NOT_FOUND');
  } finally {
    stream.abort();
  }
});
