/**
 * The pipeline runner alone (gateway/pipeline.ts), with plain plugin objects: hook order, first refusal
 * wins, fail closed on a throw, "nothing returned = continue", and the message verdicts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { JSONRPCMessage, MessageContext, Outcome, Plugin, RouteInfo } from '../../gateway/contract.ts';
import { GatewayExchange } from '../../gateway/exchange.ts';
import { Pipeline } from '../../gateway/pipeline.ts';

const route: RouteInfo = {
  name: 'main/mcp', path: '/mcp', upstream: 'up',
  listener: { name: 'main', host: '127.0.0.1', port: 0, publicUrl: 'http://localhost:0' },
};

/** An exchange over a request object that never touches the network, with its log lines captured. */
function exchange(): { x: GatewayExchange; logs: () => Array<Record<string, unknown>> } {
  const req = new IncomingMessage(new Socket());
  req.method = 'POST';
  req.url = '/mcp';
  req.headers = { host: 'localhost', authorization: 'Bearer secret', 'content-type': 'application/json' };
  let text = '';
  const sink = new Writable({ write(c, _e, cb) { text += c.toString(); cb(); } });
  const log = pino({ level: 'debug' }, sink);
  const x = new GatewayExchange({ id: 'ex-1', route, req, url: new URL('http://gw/mcp'), log });
  return { x, logs: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

const request: JSONRPCMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'hi' } } };
const reqCtx: MessageContext = { direction: 'request', framing: 'json' };
const resCtx: MessageContext = { direction: 'response', framing: 'sse' };
const outcome: Outcome = { status: 200, bytesIn: 0, bytesOut: 0, durationMs: 1, messageRefusals: [] };

/** A plugin that records each hook call in `calls` as `<name>.<hook>` and otherwise does nothing. */
function recorder(name: string, calls: string[], extra: Partial<Plugin> = {}): Plugin {
  return {
    name,
    onRequest: () => { calls.push(`${name}.request`); },
    onRequestMessage: () => { calls.push(`${name}.requestMessage`); },
    onResponse: () => { calls.push(`${name}.response`); },
    onResponseMessage: () => { calls.push(`${name}.responseMessage`); },
    onDone: () => { calls.push(`${name}.done`); },
    ...extra,
  };
}

test('request hooks run in route order, response hooks in reverse (onion)', async () => {
  const calls: string[] = [];
  const p = new Pipeline([recorder('a', calls), recorder('b', calls), recorder('c', calls)]);
  const { x } = exchange();
  assert.equal(await p.request(x), undefined);
  assert.deepEqual((await p.message(request, x, reqCtx)).kind, 'forward');
  assert.equal(await p.response({ status: 200, headers: {} }, x), undefined);
  assert.deepEqual((await p.message(request, x, resCtx)).kind, 'forward');
  p.done(x, outcome);
  assert.deepEqual(calls, [
    'a.request', 'b.request', 'c.request',
    'a.requestMessage', 'b.requestMessage', 'c.requestMessage',
    'c.response', 'b.response', 'a.response',
    'c.responseMessage', 'b.responseMessage', 'a.responseMessage',
    'c.done', 'b.done', 'a.done',
  ]);
});

test('plugins without a hook are skipped, and body parsing is asked only when a message hook exists', async () => {
  const calls: string[] = [];
  const headersOnly = new Pipeline([{ name: 'h', onRequest: () => { calls.push('h'); } }]);
  assert.equal(headersOnly.inspectsRequests, false);
  assert.equal(headersOnly.inspectsResponses, false);
  const reqOnly = new Pipeline([{ name: 'm', onRequestMessage: () => undefined }, { name: 'n' }]);
  assert.equal(reqOnly.inspectsRequests, true);
  assert.equal(reqOnly.inspectsResponses, false);
  const resOnly = new Pipeline([{ name: 'r', onResponseMessage: () => undefined }]);
  assert.equal(resOnly.inspectsRequests, false);
  assert.equal(resOnly.inspectsResponses, true);
  const empty = new Pipeline([]);
  const { x } = exchange();
  assert.equal(await empty.request(x), undefined);
  assert.deepEqual(await empty.message(request, x, reqCtx), { kind: 'forward', message: request });
});

test('returning nothing, continue or pass means continue, sync or async', async () => {
  const calls: string[] = [];
  const p = new Pipeline([
    { name: 'void', onRequest: () => { calls.push('void'); }, onRequestMessage: () => undefined },
    { name: 'continue', onRequest: () => ({ kind: 'continue' }), onRequestMessage: () => ({ kind: 'pass' }) },
    { name: 'async', onRequest: async () => { calls.push('async'); }, onRequestMessage: async () => ({ kind: 'pass' }) },
    { name: 'last', onRequest: () => { calls.push('last'); } },
  ]);
  const { x } = exchange();
  assert.equal(await p.request(x), undefined);
  assert.deepEqual(calls, ['void', 'async', 'last']);
  const out = await p.message(request, x, reqCtx);
  assert.equal(out.kind, 'forward');
  assert.equal((out as { message: JSONRPCMessage }).message, request, 'an untouched message is the same object');
});

test('the first refusal wins and later request hooks do not run', async () => {
  const calls: string[] = [];
  const p = new Pipeline([
    recorder('a', calls),
    recorder('auth', calls, {
      onRequest: async () => {
        calls.push('auth.request');
        return { kind: 'respond', status: 401, code: 'GW_ERR_TEST_AUTH', message: 'no', headers: { 'www-authenticate': 'Bearer' }, data: { hint: 'x' } };
      },
    }),
    recorder('limit', calls, {
      onRequest: () => {
        calls.push('limit.request');
        return { kind: 'respond', status: 429, code: 'GW_ERR_TEST_LIMIT', message: 'slow down' };
      },
    }),
  ]);
  const { x } = exchange();
  const r = await p.request(x);
  assert.deepEqual(calls, ['a.request', 'auth.request']);
  assert.deepEqual(r, {
    status: 401, code: 'GW_ERR_TEST_AUTH', message: 'no', headers: { 'www-authenticate': 'Bearer' },
    data: { hint: 'x' }, rpcCode: -32000, plugin: 'auth',
  });
});

test('a response-head refusal: the first in reverse order wins', async () => {
  const calls: string[] = [];
  const refuse = (name: string, code: string): Plugin => ({
    name,
    onResponse: () => { calls.push(name); return { kind: 'respond', status: 502, code, message: name }; },
  });
  const p = new Pipeline([refuse('outer', 'GW_ERR_OUTER'), refuse('inner', 'GW_ERR_INNER')]);
  const { x } = exchange();
  const r = await p.response({ status: 200, headers: {} }, x);
  assert.equal(r?.code, 'GW_ERR_INNER');
  assert.equal(r?.plugin, 'inner');
  assert.deepEqual(calls, ['inner']);
});

test('a response hook may change the head it is given', async () => {
  const p = new Pipeline([{ name: 'h', onResponse: (head) => { head.headers['x-added'] = '1'; head.status = 203; } }]);
  const { x } = exchange();
  const head = { status: 200, headers: {} as Record<string, string> };
  assert.equal(await p.response(head, x), undefined);
  assert.deepEqual(head, { status: 203, headers: { 'x-added': '1' } });
});

for (const [kind, hook] of [
  ['throws', () => { throw new Error('boom: internal detail'); }],
  ['rejects', async () => { throw new Error('boom: internal detail'); }],
] as const) {
  test(`a request hook that ${kind} fails closed with GW_ERR_PLUGIN_FAILED and is logged, not shown`, async () => {
    const calls: string[] = [];
    const p = new Pipeline([{ name: 'broken', onRequest: hook }, recorder('after', calls)]);
    const { x, logs } = exchange();
    const r = await p.request(x);
    assert.equal(r?.status, 500);
    assert.equal(r?.code, 'GW_ERR_PLUGIN_FAILED');
    assert.equal(r?.rpcCode, -32603);
    assert.equal(r?.plugin, 'broken');
    assert.ok(!r?.message.includes('internal detail'), 'the client does not see the error text');
    assert.ok(r?.message.includes('ex-1'), 'the message names the exchange so operators find the log line');
    assert.deepEqual(calls, [], 'nothing after a failed plugin runs');
    const line = logs().find((l) => l.plugin === 'broken');
    assert.ok(line, 'the failure is logged with the plugin name');
    assert.match(JSON.stringify(line), /boom: internal detail/);
  });
}

test('response-head and message hooks that throw fail closed too', async () => {
  const { x } = exchange();
  const head = new Pipeline([{ name: 'h', onResponse: () => { throw new Error('x'); } }]);
  assert.equal((await head.response({ status: 200, headers: {} }, x))?.code, 'GW_ERR_PLUGIN_FAILED');
  for (const ctx of [reqCtx, resCtx]) {
    const calls: string[] = [];
    const p = new Pipeline([
      recorder('outer', calls),
      { name: 'm', onRequestMessage: async () => { throw new Error('x'); }, onResponseMessage: () => { throw new Error('x'); } },
    ]);
    const out = await p.message(request, x, ctx);
    assert.equal(out.kind, 'reject', `${ctx.direction}: a throwing message hook rejects the message`);
    assert.equal(out.kind === 'reject' && out.refusal.code, 'GW_ERR_PLUGIN_FAILED');
    assert.equal(out.kind === 'reject' && out.refusal.rpcCode, -32603);
    // Request side: outer ran before m threw. Response side (reverse): m threw first, outer never ran.
    assert.deepEqual(calls, ctx.direction === 'request' ? ['outer.requestMessage'] : []);
  }
});

test('onDone: every hook runs even when one throws', () => {
  const calls: string[] = [];
  const p = new Pipeline([
    { name: 'a', onDone: () => { calls.push('a'); } },
    { name: 'b', onDone: () => { throw new Error('done failed'); } },
    { name: 'c', onDone: (_x, o) => { calls.push(`c:${o.status}`); } },
  ]);
  const { x, logs } = exchange();
  assert.doesNotThrow(() => p.done(x, outcome));
  assert.deepEqual(calls, ['c:200', 'a']);
  assert.ok(logs().some((l) => l.plugin === 'b'), 'the throw is logged');
});

test('replace: the next plugin sees the replaced message, and it is what is forwarded', async () => {
  const seen: unknown[] = [];
  const replaced: JSONRPCMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { message: 'rewritten' } } };
  const p = new Pipeline([
    { name: 'rewrite', onRequestMessage: () => ({ kind: 'replace', message: replaced }) },
    { name: 'observe', onRequestMessage: (m, _x, ctx) => { seen.push(m, ctx); } },
  ]);
  const { x } = exchange();
  const out = await p.message(request, x, reqCtx);
  assert.deepEqual(out, { kind: 'forward', message: replaced });
  assert.equal(seen[0], replaced);
  assert.equal(seen[1], reqCtx, 'the context travels unchanged');
});

test('drop: the message is removed and later plugins do not see it', async () => {
  const calls: string[] = [];
  const p = new Pipeline([
    recorder('inner', calls),
    { name: 'filter', onResponseMessage: () => ({ kind: 'drop' }) },
  ]);
  const { x } = exchange();
  // Response side runs in reverse: filter first, then inner (which must not run).
  const out = await p.message({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } }, x, resCtx);
  assert.deepEqual(out, { kind: 'drop', plugin: 'filter' });
  assert.deepEqual(calls, []);
});

test('reject: a JSON-RPC refusal with its codes; typed httpStatus/httpHeaders set the HTTP answer', async () => {
  const { x } = exchange();
  const plain = new Pipeline([
    { name: 'policy', onRequestMessage: () => ({ kind: 'reject', rpcCode: -32602, code: 'GW_ERR_TEST_DENIED', message: 'denied', data: { tool: 'echo' } }) },
    { name: 'never', onRequestMessage: () => { throw new Error('must not run'); } },
  ]);
  assert.deepEqual(await plain.message(request, x, reqCtx), {
    kind: 'reject',
    refusal: { status: 200, headers: undefined, rpcCode: -32602, code: 'GW_ERR_TEST_DENIED', message: 'denied', data: { tool: 'echo' }, plugin: 'policy' },
  });
  const http = new Pipeline([
    { name: 'limit', onRequestMessage: () => ({ kind: 'reject', rpcCode: -32000, code: 'GW_ERR_TEST_LIMIT', message: 'later', httpStatus: 429, httpHeaders: { 'retry-after': '3' }, data: { left: 0 } }) },
  ]);
  const out = await http.message(request, x, reqCtx);
  assert.equal(out.kind, 'reject');
  if (out.kind !== 'reject') return;
  assert.equal(out.refusal.status, 429);
  assert.deepEqual(out.refusal.headers, { 'retry-after': '3' });
  assert.deepEqual(out.refusal.data, { left: 0 });
});

test('a replace followed by a reject: the refusal wins', async () => {
  const { x } = exchange();
  const p = new Pipeline([
    { name: 'rewrite', onRequestMessage: () => ({ kind: 'replace', message: { ...request, id: 99 } as JSONRPCMessage }) },
    { name: 'deny', onRequestMessage: (m) => ((m as { id?: unknown }).id === 99 ? { kind: 'reject', rpcCode: -32600, code: 'GW_ERR_TEST', message: 'no' } : undefined) },
  ]);
  const out = await p.message(request, x, reqCtx);
  assert.equal(out.kind === 'reject' && out.refusal.plugin, 'deny');
});

test('the exchange never offers the client credentials or hop-by-hop headers upstream', () => {
  const { x } = exchange();
  assert.equal(x.upstreamHeaders.authorization, undefined);
  assert.equal(x.upstreamHeaders['content-type'], 'application/json');
});
