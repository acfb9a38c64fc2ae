/**
 * The 2025 → 2026 translator, driven directly (as stage 5 dispatches to it) against a real SDK v2
 * server, and once end to end with the real v1 SDK client through a stand-in for the core (which
 * seals and opens session ids as the core does).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import pino from 'pino';
import { LoggingMessageNotificationSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { createToModernTranslator, type ToModernOptions } from '../../gateway/era/to-modern/index.ts';
import type { StateSealer, Translator, UpstreamPort } from '../../gateway/era/translation.ts';
import { httpPort } from '../../gateway/era/upstream-port.ts';
import { LEGACY_VERSION, META } from '../../gateway/era/versions.ts';
import type { UpstreamResponse } from '../../gateway/runtime.ts';
import { ownerOf, SEAL_KIND, SessionSealer } from '../../gateway/session-seal.ts';
import { startV2Server, type V2Server } from '../helpers/v2-server.ts';
import { connectV1 } from '../helpers/v2-client.ts';

type Msg = Record<string, any>;

const sealer = SessionSealer.random();
const state: StateSealer = {
  seal: (payload, principal) => sealer.seal(SEAL_KIND.streamableSession, payload, ownerOf(principal), 'route:graph'),
  open: (sealed, principal) => {
    const o = sealer.open(SEAL_KIND.streamableSession, sealed, ownerOf(principal), 'route:graph');
    return o?.ownerMatches ? o.payload : undefined;
  },
};

let server: V2Server;
before(async () => {
  server = await startV2Server();
});
after(async () => {
  await server.close();
});

function translator(opts?: ToModernOptions): Translator {
  const origin = new URL(server.url).origin;
  return createToModernTranslator({ upstream: httpPort(origin), state, log: pino({ level: 'silent' }), route: 'graph' }, opts);
}

/** One exchange as the core makes it; `end()` fires its signal, as the core does when it is over. */
async function exchange(t: Translator, method: string, body?: unknown, session?: string) {
  const ac = new AbortController();
  const headers: Record<string, string> = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };
  if (session) headers['mcp-session-id'] = session;
  const res = await t.dispatch({
    method,
    pathAndQuery: '/mcp',
    headers,
    body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
    principal: undefined,
    signal: ac.signal,
  });
  return { res, end: () => ac.abort() };
}

async function text(res: Readable): Promise<string> {
  let s = '';
  for await (const c of res) s += c.toString();
  return s;
}

/** The JSON-RPC messages of an event stream, one by one (a plain reader, independent of the gateway's codec). */
async function* events(res: Readable): AsyncGenerator<Msg> {
  let buf = '';
  for await (const chunk of res) {
    buf += chunk.toString();
    let i: number;
    while ((i = buf.indexOf('\n\n')) !== -1) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data) yield JSON.parse(data) as Msg;
    }
  }
}

async function rpc(t: Translator, session: string, id: number | string, method: string, params: Msg = {}): Promise<{ status: number; message: Msg; res: UpstreamResponse }> {
  const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', id, method, params }, session);
  try {
    const ct = String(res.headers['content-type']);
    if (ct.startsWith('text/event-stream')) {
      let last: Msg | undefined;
      for await (const m of events(res)) last = m;
      return { status: res.statusCode, message: last!, res };
    }
    return { status: res.statusCode, message: JSON.parse(await text(res)) as Msg, res };
  } finally {
    end();
  }
}

const CAPS = { elicitation: {} };
const CLIENT = { name: 'legacy-client', version: '3.1.0' };

async function initialize(t: Translator, protocolVersion = '2025-06-18', capabilities: Msg = CAPS): Promise<{ session: string; result: Msg; res: UpstreamResponse }> {
  const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion, capabilities, clientInfo: CLIENT } });
  const body = JSON.parse(await text(res)) as Msg;
  end();
  assert.equal(res.statusCode, 200, JSON.stringify(body));
  return { session: String(res.headers['mcp-session-id']), result: body.result as Msg, res };
}

/** The requests the upstream saw since `from`, as [method, headers, body]. */
function seenSince(from: number) {
  return server.seen.slice(from).filter((s) => s.method === 'POST').map((s) => ({ headers: s.headers, body: s.body as Msg }));
}

describe('to-modern translator (2025 client → 2026 upstream)', () => {
  test('initialize is answered from server/discover with a session id; notifications/initialized is 202', async () => {
    const t = translator();
    const from = server.seen.length;
    const { session, result } = await initialize(t);
    assert.ok(session.length > 0);
    assert.equal(result.protocolVersion, '2025-06-18');
    assert.deepEqual(result.serverInfo, { name: 'v2-graph', version: '1.0.0' });
    assert.equal(result.capabilities.tools.listChanged, true);
    assert.ok(result.capabilities.logging);
    for (const k of ['resultType', 'ttlMs', 'cacheScope', 'supportedVersions']) assert.equal(k in result, false, k);
    const [discover] = seenSince(from);
    assert.equal(discover.body.method, 'server/discover');
    assert.equal(discover.headers['mcp-method'], 'server/discover');
    assert.equal(discover.headers['mcp-protocol-version'], '2026-07-28');
    assert.deepEqual(discover.body.params._meta[META.clientCapabilities], CAPS);
    assert.deepEqual(discover.body.params._meta[META.clientInfo], CLIENT);

    // A version the gateway does not know is answered with the newest 2025 revision; discover is cached.
    const other = await initialize(t, '2024-01-01');
    assert.equal(other.result.protocolVersion, LEGACY_VERSION);
    assert.notEqual(other.session, session);
    assert.equal(seenSince(from).length, 1, 'discover answered from the cache');

    const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    assert.equal(res.statusCode, 202);
    end();
    t.close();
  });

  test('requests without a session are 400, with a foreign one 404', async () => {
    const t = translator();
    const none = await exchange(t, 'POST', { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(none.res.statusCode, 400);
    none.end();
    const foreign = await exchange(t, 'POST', { jsonrpc: '2.0', id: 1, method: 'tools/list' }, 'not-a-session');
    assert.equal(foreign.res.statusCode, 404);
    foreign.end();
    t.close();
  });

  test('tools/list reaches the upstream enveloped and comes back in the 2025 shape', async () => {
    const t = translator();
    const { session } = await initialize(t);
    const from = server.seen.length;
    const { status, message } = await rpc(t, session, 7, 'tools/list', { _meta: { traceKey: 'x' } });
    assert.equal(status, 200);
    assert.equal(message.id, 7);
    const names = (message.result.tools as Msg[]).map((x) => x.name);
    assert.ok(names.includes('query_graph') && names.includes('pick_graph'));
    for (const k of ['resultType', 'ttlMs', 'cacheScope', '_meta']) assert.equal(k in message.result, false, k);

    const [up] = seenSince(from);
    assert.equal(up.headers['mcp-method'], 'tools/list');
    assert.equal(up.headers['mcp-protocol-version'], '2026-07-28');
    assert.equal(up.headers['mcp-session-id'], undefined);
    const meta = up.body.params._meta;
    assert.equal(meta[META.protocolVersion], '2026-07-28');
    assert.deepEqual(meta[META.clientCapabilities], CAPS);
    assert.deepEqual(meta[META.clientInfo], CLIENT);
    assert.equal(meta.traceKey, 'x', "the client's own _meta keys stay");
    t.close();
  });

  test('tools/call carries Mcp-Name and Mcp-Param-Graph; an unseen tool is listed first', async () => {
    const t = translator();
    const { session } = await initialize(t);
    const from = server.seen.length;
    // No tools/list before: the translator must learn query_graph's x-mcp-header itself.
    const { status, message } = await rpc(t, session, 'call-1', 'tools/call', { name: 'query_graph', arguments: { graphName: 'social', query: 'MATCH (n) RETURN n' } });
    assert.equal(status, 200);
    assert.equal(message.id, 'call-1');
    assert.equal(message.result.content[0].text, 'graph social: ran MATCH (n) RETURN n');
    assert.equal('resultType' in message.result, false);

    const seen = seenSince(from);
    assert.deepEqual(seen.map((s) => s.body.method), ['tools/list', 'tools/call']);
    const call = seen[1];
    assert.equal(call.headers['mcp-method'], 'tools/call');
    assert.equal(call.headers['mcp-name'], 'query_graph');
    assert.equal(call.headers['mcp-param-graph'], 'social');
    assert.equal(call.body.id, 'call-1');

    // Known now: the next call goes straight up.
    const again = server.seen.length;
    await rpc(t, session, 2, 'tools/call', { name: 'query_graph', arguments: { graphName: 'g2', query: 'q' } });
    assert.deepEqual(seenSince(again).map((s) => s.body.method), ['tools/call']);
    t.close();
  });

  test('a header mismatch (stale declarations) lists the tools again and sends the call once more', async () => {
    // The first tools/list the translator reads names the header "Stale" instead of "Graph", as if
    // the upstream changed the tool's schema since; the upstream then refuses the call with -32020.
    const real = httpPort(new URL(server.url).origin);
    let stale = true;
    const port: UpstreamPort = {
      async send(call) {
        const res = await real.send(call);
        if (!stale || JSON.parse(call.body!.toString()).method !== 'tools/list') return res;
        stale = false;
        const body = (await text(res)).replace('"x-mcp-header":"Graph"', '"x-mcp-header":"Stale"');
        return Object.assign(Readable.from([body]), { statusCode: res.statusCode, headers: { 'content-type': 'application/json' }, complete: true });
      },
    };
    const t = createToModernTranslator({ upstream: port, state, log: pino({ level: 'silent' }), route: 'graph' });
    const { session } = await initialize(t);
    await rpc(t, session, 1, 'tools/list');
    const from = server.seen.length;
    const { message } = await rpc(t, session, 2, 'tools/call', { name: 'query_graph', arguments: { graphName: 'm', query: 'q' } });
    assert.equal(message.result.content[0].text, 'graph m: ran q');
    const seen = seenSince(from);
    assert.deepEqual(seen.map((x) => x.body.method), ['tools/call', 'tools/list', 'tools/call']);
    assert.equal(seen[0].headers['mcp-param-stale'], 'm');
    assert.equal(seen[2].headers['mcp-param-graph'], 'm');
    t.close();
  });

  test('an unknown method (2026: HTTP 404, -32601) is a 2025 JSON-RPC error with HTTP 200', async () => {
    const t = translator();
    const { session } = await initialize(t);
    const { status, message } = await rpc(t, session, 3, 'nonexistent/method');
    assert.equal(status, 200);
    assert.equal(message.error.code, -32601);
    assert.equal(message.id, 3);
    t.close();
  });

  test('ping and logging/setLevel are answered at the gateway; the level rides on later requests', async () => {
    const t = translator();
    const { session } = await initialize(t);
    const from = server.seen.length;
    assert.deepEqual((await rpc(t, session, 1, 'ping')).message, { jsonrpc: '2.0', id: 1, result: {} });
    assert.deepEqual((await rpc(t, session, 2, 'logging/setLevel', { level: 'info' })).message.result, {});
    assert.equal(seenSince(from).length, 0, 'nothing went upstream');

    const { message, res } = await rpc(t, session, 3, 'tools/call', { name: 'slow_progress', arguments: { steps: 2 }, _meta: { progressToken: 'p1' } });
    assert.equal(String(res.headers['content-type']).startsWith('text/event-stream'), true, 'the upstream chose SSE');
    assert.equal(message.result.content[0].text, 'done 2 steps');
    const up = seenSince(from).find((s) => s.body.method === 'tools/call')!;
    assert.equal(up.body.params._meta[META.logLevel], 'info');
    assert.equal(up.body.params._meta.progressToken, 'p1');
    t.close();
  });

  test('progress and log messages are relayed on the stream before the result', async () => {
    const t = translator();
    const { session } = await initialize(t);
    await rpc(t, session, 1, 'logging/setLevel', { level: 'debug' });
    const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'slow_progress', arguments: { steps: 3 }, _meta: { progressToken: 7 } } }, session);
    const got: Msg[] = [];
    for await (const m of events(res)) got.push(m);
    end();
    assert.deepEqual(got.map((m) => m.method ?? 'result'), ['notifications/message', 'notifications/progress', 'notifications/progress', 'notifications/progress', 'result']);
    assert.deepEqual(got.slice(1, 4).map((m) => m.params.progress), [1, 2, 3]);
    assert.equal(got[4].id, 9);
    t.close();
  });

  test('DELETE ends the session: 200, then 404', async () => {
    const t = translator();
    const { session } = await initialize(t);
    const del = await exchange(t, 'DELETE', undefined, session);
    assert.equal(del.res.statusCode, 200);
    del.end();
    const after = await exchange(t, 'POST', { jsonrpc: '2.0', id: 1, method: 'ping' }, session);
    assert.equal(after.res.statusCode, 404);
    after.end();
    t.close();
  });

  describe('multi round-trip requests as server-to-client requests', () => {
    test('pick_graph: elicitation/create on the stream, answered by POST, retried upstream with the same requestState', async () => {
      const t = translator();
      const { session } = await initialize(t, '2025-11-25');
      const from = server.seen.length;
      const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', id: 41, method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'g' } } }, session);
      assert.equal(String(res.headers['content-type']).startsWith('text/event-stream'), true);
      const stream = events(res);
      const ask = (await stream.next()).value as Msg;
      assert.equal(ask.method, 'elicitation/create');
      assert.equal(ask.params.message, 'Which graph instead of g?');
      assert.equal(ask.params.mode, 'form');
      assert.equal(typeof ask.id, 'string');

      const answer = await exchange(t, 'POST', { jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { graph: 'chosen' } } }, session);
      assert.equal(answer.res.statusCode, 202);
      answer.end();

      const final = (await stream.next()).value as Msg;
      end();
      assert.equal(final.id, 41);
      assert.equal(final.result.content[0].text, 'picked chosen (asked about g)');
      assert.equal(final.result.isError, undefined);
      assert.equal('resultType' in final.result, false);

      const calls = seenSince(from).filter((x) => x.body.method === 'tools/call');
      assert.equal(calls.length, 2);
      assert.equal(calls[0].body.id, 41);
      assert.notEqual(calls[1].body.id, 41, 'the retry has a new id');
      assert.deepEqual(calls[1].body.params.inputResponses, { graph: { action: 'accept', content: { graph: 'chosen' } } });
      assert.match(calls[1].body.params.requestState, /^state:g:/);
      assert.deepEqual(calls[1].body.params.arguments, { graphName: 'g' });
      assert.equal(calls[1].headers['mcp-name'], 'pick_graph');
      t.close();
    });

    test('before 2025-11-25 the elicitation carries no mode', async () => {
      const t = translator();
      const { session } = await initialize(t, '2025-06-18');
      const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'h' } } }, session);
      const stream = events(res);
      const ask = (await stream.next()).value as Msg;
      assert.equal('mode' in ask.params, false);
      (await exchange(t, 'POST', { jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { graph: 'x' } } }, session)).end();
      assert.equal(((await stream.next()).value as Msg).result.content[0].text, 'picked x (asked about h)');
      end();
      t.close();
    });

    test('a client that declared no elicitation gets an error, never a request', async () => {
      const t = translator();
      const { session } = await initialize(t, '2025-11-25', {});
      const { status, message } = await rpc(t, session, 5, 'tools/call', { name: 'pick_graph', arguments: { graphName: 'g' } });
      assert.equal(status, 200);
      assert.equal(message.id, 5);
      assert.ok(message.error, JSON.stringify(message));
      t.close();
    });

    test('the client declining is passed on; the upstream decides', async () => {
      const t = translator();
      const { session } = await initialize(t);
      const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'g' } } }, session);
      const stream = events(res);
      const ask = (await stream.next()).value as Msg;
      (await exchange(t, 'POST', { jsonrpc: '2.0', id: ask.id, result: { action: 'decline' } }, session)).end();
      const final = (await stream.next()).value as Msg;
      end();
      assert.equal(final.result.isError, true);
      assert.equal(final.result.content[0].text, 'no graph was picked');
      t.close();
    });

    test('an unanswered request for input times out with an error under the original id', async () => {
      const t = translator({ inputTimeoutMs: 50 });
      const { session } = await initialize(t);
      const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', id: 'slow', method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'g' } } }, session);
      const got: Msg[] = [];
      for await (const m of events(res)) got.push(m);
      end();
      assert.equal(got.length, 2);
      assert.equal(got[0].method, 'elicitation/create');
      assert.equal(got[1].id, 'slow');
      assert.equal(got[1].error.code, -32001);
      // Too late: nothing awaits it any more.
      const late = await exchange(t, 'POST', { jsonrpc: '2.0', id: got[0].id, result: { action: 'accept', content: { graph: 'x' } } }, session);
      assert.equal(late.res.statusCode, 400);
      late.end();
      t.close();
    });

    test('a response from another session does not match', async () => {
      const t = translator();
      const a = await initialize(t);
      const b = await initialize(t);
      const { res, end } = await exchange(t, 'POST', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'g' } } }, a.session);
      const stream = events(res);
      const ask = (await stream.next()).value as Msg;
      const wrong = await exchange(t, 'POST', { jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { graph: 'stolen' } } }, b.session);
      assert.equal(wrong.res.statusCode, 400);
      wrong.end();
      (await exchange(t, 'POST', { jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { graph: 'mine' } } }, a.session)).end();
      assert.equal(((await stream.next()).value as Msg).result.content[0].text, 'picked mine (asked about g)');
      end();
      t.close();
    });

    test('notifications/cancelled ends the request without an answer; a client that leaves frees its wait', async () => {
      const t = translator();
      const { session } = await initialize(t);
      const first = await exchange(t, 'POST', { jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'g' } } }, session);
      const stream = events(first.res);
      assert.equal(((await stream.next()).value as Msg).method, 'elicitation/create');
      const cancel = await exchange(t, 'POST', { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c1' } }, session);
      assert.equal(cancel.res.statusCode, 202);
      cancel.end();
      assert.equal((await stream.next()).done, true, 'the stream ends with no answer');
      first.end();

      const second = await exchange(t, 'POST', { jsonrpc: '2.0', id: 'c2', method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'g' } } }, session);
      const s2 = events(second.res);
      const ask = (await s2.next()).value as Msg;
      second.end(); // the client left
      assert.equal((await s2.next()).done, true);
      const late = await exchange(t, 'POST', { jsonrpc: '2.0', id: ask.id, result: { action: 'accept', content: { graph: 'x' } } }, session);
      assert.equal(late.res.statusCode, 400);
      late.end();
      t.close();
    });
  });

  describe('the GET stream, from subscriptions/listen', () => {
    test('relays tools/list_changed after addTool, untagged, and forgets learned header declarations', async () => {
      const t = translator();
      const { session } = await initialize(t);
      await rpc(t, session, 1, 'tools/list');
      const from = server.seen.length;
      const get = await exchange(t, 'GET', undefined, session);
      // Answered once the upstream acknowledged: everything from here on is seen.
      assert.equal(get.res.statusCode, 200);
      assert.equal(String(get.res.headers['content-type']).startsWith('text/event-stream'), true);
      const listen = seenSince(from).find((x) => x.body.method === 'subscriptions/listen')!;
      assert.equal(listen.headers['mcp-method'], 'subscriptions/listen');
      assert.deepEqual(listen.body.params.notifications, { toolsListChanged: true, promptsListChanged: true, resourcesListChanged: true });

      const second = await exchange(t, 'GET', undefined, session);
      assert.equal(second.res.statusCode, 409, 'one GET stream per session');
      second.end();

      const stream = events(get.res);
      server.addTool('added_for_get_test');
      const changed = (await stream.next()).value as Msg;
      assert.deepEqual(changed, { jsonrpc: '2.0', method: 'notifications/tools/list_changed' });

      // The declarations learned from the first tools/list may be stale: the next call lists again.
      const before = server.seen.length;
      await rpc(t, session, 2, 'tools/call', { name: 'query_graph', arguments: { graphName: 'after', query: 'q' } });
      assert.deepEqual(seenSince(before).map((x) => x.body.method), ['tools/list', 'tools/call']);

      // DELETE ends the session and its stream.
      (await exchange(t, 'DELETE', undefined, session)).end();
      assert.equal((await stream.next()).done, true);
      get.end();
      t.close();
    });

    test('resources/subscribe renews the listen with the URI before it is answered', async () => {
      const t = translator();
      const { session } = await initialize(t);
      const get = await exchange(t, 'GET', undefined, session);
      assert.equal(get.res.statusCode, 200);
      const from = server.seen.length;
      assert.deepEqual((await rpc(t, session, 3, 'resources/subscribe', { uri: 'graph://listing' })).message.result, {});
      const renewed = seenSince(from).filter((x) => x.body.method === 'subscriptions/listen');
      assert.equal(renewed.length, 1);
      assert.deepEqual(renewed[0].body.params.notifications.resourceSubscriptions, ['graph://listing']);
      // Subscribing twice changes nothing upstream.
      const again = server.seen.length;
      await rpc(t, session, 4, 'resources/subscribe', { uri: 'graph://listing' });
      assert.equal(seenSince(again).length, 0);
      get.end();
      t.close();
    });
  });

  test('close() ends open streams: a GET stream and a request waiting for input', async () => {
    const t = translator();
    const { session } = await initialize(t);
    const get = await exchange(t, 'GET', undefined, session);
    const waiting = await exchange(t, 'POST', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'pick_graph', arguments: { graphName: 'g' } } }, session);
    const asks = events(waiting.res);
    assert.equal(((await asks.next()).value as Msg).method, 'elicitation/create');
    t.close();
    assert.equal((await asks.next()).done, true);
    assert.equal((await events(get.res).next()).done, true);
    get.end();
    waiting.end();
    const refused = await exchange(t, 'POST', { jsonrpc: '2.0', id: 2, method: 'ping' }, session);
    assert.equal(refused.res.statusCode, 503);
    refused.end();
  });

  test('the v1 SDK client works through the translator (elicitation, progress, logs, list changes)', async () => {
    const t = translator();
    const core = await serveLikeCore(t);
    const getOpened = once(core.events, 'get');
    const conn = await connectV1(core.url, { onElicit: (p) => ({ action: 'accept', content: { graph: `v1 answer to: ${p.message}` } }) });
    try {
      const tools = await conn.client.listTools();
      assert.ok(tools.tools.some((x) => x.name === 'query_graph'));
      const q = await conn.client.callTool({ name: 'query_graph', arguments: { graphName: 'v1g', query: 'RETURN 1' } });
      assert.deepEqual(q.content, [{ type: 'text', text: 'graph v1g: ran RETURN 1' }]);

      const picked = await conn.client.callTool({ name: 'pick_graph', arguments: { graphName: 'a' } });
      assert.deepEqual(picked.content, [{ type: 'text', text: 'picked v1 answer to: Which graph instead of a? (asked about a)' }]);

      await conn.client.ping();
      await conn.client.setLoggingLevel('info');
      const logs: string[] = [];
      conn.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(String(n.params.data)));
      const progress: number[] = [];
      const slow = await conn.client.callTool({ name: 'slow_progress', arguments: { steps: 2 } }, undefined, { onprogress: (p) => void progress.push(p.progress) });
      assert.deepEqual(slow.content, [{ type: 'text', text: 'done 2 steps' }]);
      assert.deepEqual(progress, [1, 2]);
      assert.deepEqual(logs, ['starting 2 steps']);

      await getOpened;
      const changed = new Promise<void>((resolve) => conn.client.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()));
      server.addTool('added_for_v1');
      await changed;
    } finally {
      await conn.close();
      await core.close();
      t.close();
    }
  });
});

/**
 * A stand-in for the core in front of the translator: it seals the session ids the translator mints
 * and opens them on the way back, and ends each exchange's signal when its response closes.
 * Emits `get` once a GET stream's headers are out (the translator answers it once listening).
 */
async function serveLikeCore(t: Translator): Promise<{ url: string; events: EventEmitter; close(): Promise<void> }> {
  const emitter = new EventEmitter();
  const srv = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const ac = new AbortController();
    res.on('close', () => ac.abort());
    const headers = { ...req.headers };
    const sealed = headers['mcp-session-id'];
    if (typeof sealed === 'string') {
      const opened = state.open(sealed, undefined);
      if (opened === undefined) return void res.writeHead(404).end();
      headers['mcp-session-id'] = opened;
    }
    try {
      const up = await t.dispatch({ method: req.method ?? 'GET', pathAndQuery: '/mcp', headers, body: chunks.length ? Buffer.concat(chunks) : undefined, principal: undefined, signal: ac.signal });
      const out = { ...up.headers };
      if (typeof out['mcp-session-id'] === 'string') out['mcp-session-id'] = state.seal(out['mcp-session-id'], undefined);
      res.writeHead(up.statusCode, out as http.OutgoingHttpHeaders);
      res.flushHeaders();
      if (req.method === 'GET') emitter.emit('get', up.statusCode);
      up.pipe(res);
    } catch {
      if (!res.headersSent) res.writeHead(502).end();
    }
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    events: emitter,
    close: async () => {
      srv.closeAllConnections();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}
