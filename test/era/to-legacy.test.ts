/**
 * The 2026 → 2025 translator, driven directly (no gateway around it) against real 2025-era servers:
 * `@modelcontextprotocol/server-everything` (SSE answers, elicitation, progress, subscriptions) and
 * the SDK v1 graph server in JSON mode. Each test builds the `UpstreamCall`s a 2026 client's exchange
 * becomes and reads the `UpstreamResponse` as the core would, then ends the exchange (its signal
 * aborts) as the core does once the answer is read.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createParser } from 'eventsource-parser';
import pino from 'pino';
import type { Principal } from '../../gateway/contract.ts';
import type { UpstreamCall, UpstreamResponse } from '../../gateway/runtime.ts';
import { ownerOf, SEAL_KIND, SessionSealer } from '../../gateway/session-seal.ts';
import type { StateSealer, Translator } from '../../gateway/era/translation.ts';
import { httpPort } from '../../gateway/era/upstream-port.ts';
import { META, MODERN_VERSION } from '../../gateway/era/versions.ts';
import { createToLegacyTranslator } from '../../gateway/era/to-legacy/index.ts';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startGraphUpstream, type GraphUpstream } from '../helpers/graph-upstream.ts';

type Msg = Record<string, any>;

const alice: Principal = { issuer: 'https://issuer.test', tenant: 'acme', subject: 'alice', scopes: [], claims: {} };
const bob: Principal = { issuer: 'https://issuer.test', tenant: 'acme', subject: 'bob', scopes: [], claims: {} };

/** What the core would give a translator: route-bound seals, opened only by their owner. */
function stateSealer(): StateSealer {
  const sealer = SessionSealer.random();
  return {
    seal: (payload, principal) => sealer.seal(SEAL_KIND.requestState, payload, ownerOf(principal), 'route:test'),
    open: (sealed, principal) => {
      const opened = sealer.open(SEAL_KIND.requestState, sealed, ownerOf(principal), 'route:test');
      return opened?.ownerMatches ? opened.payload : undefined;
    },
  };
}

/** A call the translator made upstream, and the answer it got. */
interface Seen {
  method: string;
  headers: Msg;
  body: Msg | undefined;
  res: UpstreamResponse;
}

/**
 * The translator over the upstream at `origin`, through a port that records every call it makes, so
 * tests can assert what a 2025 server was sent, and wait for a call to be made.
 */
function translatorFor(origin: string): { t: Translator; seen: Seen[]; made(pred: (s: Seen) => boolean): Promise<Seen> } {
  const port = httpPort(origin);
  const seen: Seen[] = [];
  const calls = new EventEmitter();
  const upstream = {
    async send(call: UpstreamCall): Promise<UpstreamResponse> {
      const res = await port.send(call);
      const entry = { method: call.method, headers: call.headers as Msg, body: call.body ? JSON.parse(call.body.toString('utf8')) : undefined, res };
      seen.push(entry);
      calls.emit('call', entry);
      return res;
    },
  };
  const t = createToLegacyTranslator({ upstream, state: stateSealer(), log: pino({ level: 'silent' }), route: 'test' });
  const made = (pred: (s: Seen) => boolean) => new Promise<Seen>((resolve) => {
    const hit = seen.find(pred);
    if (hit) return resolve(hit);
    const on = (s: Seen) => {
      if (!pred(s)) return;
      calls.off('call', on);
      resolve(s);
    };
    calls.on('call', on);
  });
  return { t, seen, made };
}

let nextId = 1;

/** A 2026 request: its version, capabilities and identity in `_meta`. */
function request(method: string, params: Msg = {}, opts: { caps?: Msg; meta?: Msg } = {}): Msg {
  return {
    jsonrpc: '2.0', id: nextId++, method,
    params: {
      ...params,
      _meta: {
        [META.protocolVersion]: MODERN_VERSION,
        [META.clientCapabilities]: opts.caps ?? {},
        [META.clientInfo]: { name: 'to-legacy-test', version: '1.0.0' },
        ...opts.meta,
      },
    },
  };
}

/** Sends one client exchange; `end()` ends it as the core does (answer read, or client gone): its signal aborts. */
async function exchange(t: Translator, body: Msg, principal: Principal | undefined = alice): Promise<{ res: UpstreamResponse; end(): void }> {
  const abort = new AbortController();
  // The mirror headers a 2026 client sends: what its body says.
  const version = body.params?._meta?.[META.protocolVersion] ?? MODERN_VERSION;
  const headers: Msg = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': version, 'mcp-method': body.method };
  if (body.params?.name) headers['mcp-name'] = body.params.name;
  else if (body.params?.uri) headers['mcp-name'] = body.params.uri;
  const res = await t.dispatch({ method: 'POST', pathAndQuery: '/mcp', headers, body: Buffer.from(JSON.stringify(body)), principal, signal: abort.signal });
  return { res, end: () => abort.abort() };
}

/** One exchange, its whole answer (JSON or SSE): status, content type, messages, and the final one. */
async function ask(t: Translator, body: Msg, principal: Principal | undefined = alice): Promise<{ status: number; type: string; messages: Msg[]; last: Msg }> {
  const x = await exchange(t, body, principal);
  const chunks: Buffer[] = [];
  for await (const c of x.res) chunks.push(Buffer.from(c));
  x.end();
  const text = Buffer.concat(chunks).toString('utf8');
  const type = String(x.res.headers['content-type'] ?? '');
  const messages: Msg[] = [];
  if (type.startsWith('text/event-stream')) createParser({ onEvent: (e) => messages.push(JSON.parse(e.data)) }).feed(text);
  else if (text) messages.push(JSON.parse(text));
  return { status: x.res.statusCode, type, messages, last: messages[messages.length - 1] };
}

/**
 * Resolves once a stream has closed: at once if it already has (its 'close' is gone by then), and
 * whether or not it closed with an error (an aborted upstream answer does; `once` would reject).
 */
function closed(res: UpstreamResponse): Promise<void> {
  return res.closed ? Promise.resolve() : new Promise((resolve) => res.once('close', () => resolve()));
}

/** Messages of a long-lived SSE answer, one at a time, as they arrive. */
function eventsOf(res: UpstreamResponse): { next(): Promise<Msg> } {
  const queue: Msg[] = [];
  let wake: (() => void) | undefined;
  const parser = createParser({ onEvent: (e) => { queue.push(JSON.parse(e.data)); wake?.(); } });
  res.on('data', (c: Buffer) => parser.feed(c.toString('utf8')));
  return {
    async next() {
      while (queue.length === 0) await new Promise<void>((r) => { wake = r; });
      return queue.shift()!;
    },
  };
}

describe('2026 client → 2025 upstream (server-everything)', () => {
  let upstream: RunningUpstream;
  let t: Translator;
  let seen: Seen[];
  let made: (pred: (s: Seen) => boolean) => Promise<Seen>;
  before(async () => {
    upstream = await startEverything('streamableHttp');
    ({ t, seen, made } = translatorFor(upstream.url));
  });
  after(async () => {
    t.close();
    await upstream.close();
  });

  test('server/discover answers from the upstream initialize result', async () => {
    const { status, type, last } = await ask(t, request('server/discover'));
    assert.equal(status, 200);
    assert.match(type, /^application\/json/);
    const r = last.result;
    assert.equal(r.resultType, 'complete');
    assert.deepEqual(r.supportedVersions, [MODERN_VERSION]);
    assert.ok(r.capabilities.tools, 'tools capability');
    assert.equal(r.capabilities.tasks, undefined, '2025 tasks are not advertised to a 2026 client');
    assert.equal(r._meta[META.serverInfo].name, 'mcp-servers/everything');
    assert.equal(typeof r.instructions, 'string');
    assert.equal(r.ttlMs, 0);
    assert.equal(r.cacheScope, 'private');
  });

  test('tools/list carries resultType, ttlMs and cacheScope; the tool set follows the declared capabilities', async () => {
    const plain = await ask(t, request('tools/list'));
    assert.equal(plain.status, 200);
    const r = plain.last.result;
    assert.equal(plain.last.id, nextId - 1);
    assert.equal(r.resultType, 'complete');
    assert.equal(r.ttlMs, 0);
    assert.equal(r.cacheScope, 'private');
    assert.equal(r._meta[META.serverInfo].name, 'mcp-servers/everything');
    const names = r.tools.map((x: Msg) => x.name);
    assert.ok(names.includes('echo'));
    assert.ok(!names.includes('trigger-elicitation-request'), 'no elicitation tool for a client that cannot elicit');
    // Another capability set is another upstream session, initialized with those capabilities.
    const eliciting = await ask(t, request('tools/list', {}, { caps: { elicitation: {} } }));
    assert.ok(eliciting.last.result.tools.some((x: Msg) => x.name === 'trigger-elicitation-request'));
  });

  test('a tool call streamed by the upstream is streamed, with progress under the client token', async () => {
    const body = request('tools/call', { name: 'trigger-long-running-operation', arguments: { duration: 0.2, steps: 2 } }, { meta: { progressToken: 'p-1' } });
    const { status, type, messages, last } = await ask(t, body);
    assert.equal(status, 200);
    assert.match(type, /^text\/event-stream/);
    const progress = messages.filter((m) => m.method === 'notifications/progress');
    assert.deepEqual(progress.map((m) => [m.params.progressToken, m.params.progress]), [['p-1', 1], ['p-1', 2]]);
    assert.equal(last.id, body.id);
    assert.equal(last.result.resultType, 'complete');
    assert.match(last.result.content[0].text, /Long running operation completed/);
    assert.ok(!messages.some((m) => m.method === 'notifications/message'), 'no log messages without a logLevel');
    // What the 2025 server was sent: its session and version, no 2026 headers or `_meta` keys, and a
    // progress token of the translator's (the client's is only unique among the client's requests).
    const sent = seen.find((s) => s.body?.method === 'tools/call' && s.body.params?.name === 'trigger-long-running-operation')!;
    assert.equal(sent.headers['mcp-protocol-version'], '2025-11-25');
    assert.equal(typeof sent.headers['mcp-session-id'], 'string');
    assert.equal(sent.headers['mcp-method'], undefined);
    assert.equal(sent.headers['mcp-name'], undefined);
    assert.notEqual(sent.body!.id, body.id);
    assert.deepEqual(Object.keys(sent.body!.params._meta), ['progressToken']);
    assert.notEqual(sent.body!.params._meta.progressToken, 'p-1');
  });

  test('a client that closes its stream cancels the request upstream', async () => {
    const body = request('tools/call', { name: 'trigger-long-running-operation', arguments: { duration: 30, steps: 30 } }, { meta: { progressToken: 'slow' } });
    const x = await exchange(t, body);
    const events = eventsOf(x.res);
    assert.equal((await events.next()).method, 'notifications/progress');
    const sent = seen.find((s) => s.body?.params?._meta?.progressToken !== undefined && s.body.params.arguments?.duration === 30)!;
    x.res.destroy();
    x.end();
    const cancelled = await made((s) => s.body?.method === 'notifications/cancelled' && s.body.params.requestId === sent.body!.id);
    assert.equal(cancelled.headers['mcp-session-id'], sent.headers['mcp-session-id']);
    await closed(sent.res);
  });

  test('an unknown method is 404 with -32601', async () => {
    const { status, type, last } = await ask(t, request('nonexistent/method'));
    assert.equal(status, 404);
    assert.match(type, /^application\/json/);
    assert.equal(last.error.code, -32601);
  });

  test('elicitation becomes input_required; the retry answers it and gets the result; forged or foreign state is refused', async () => {
    const caps = { elicitation: {} };
    const first = request('tools/call', { name: 'trigger-elicitation-request', arguments: {} }, { caps });
    const asked = await ask(t, first);
    assert.equal(asked.last.id, first.id);
    const r = asked.last.result;
    assert.equal(r.resultType, 'input_required');
    const [key, ...more] = Object.keys(r.inputRequests);
    assert.equal(more.length, 0);
    assert.equal(r.inputRequests[key].method, 'elicitation/create');
    assert.match(r.inputRequests[key].params.message, /Please provide inputs/);
    assert.equal(typeof r.requestState, 'string');

    const retryWith = (requestState: string) => request('tools/call', {
      name: 'trigger-elicitation-request', arguments: {},
      inputResponses: { [key]: { action: 'accept', content: { name: 'Ada Lovelace', check: true } } },
      requestState,
    }, { caps });

    const flipped = r.requestState.slice(0, 40) + (r.requestState[40] === 'A' ? 'B' : 'A') + r.requestState.slice(41);
    const tampered = await ask(t, retryWith(flipped));
    assert.equal(tampered.status, 400);
    assert.equal(tampered.last.error.code, -32602);
    assert.equal(tampered.last.error.data.code, 'GW_ERR_REQUEST_STATE_INVALID');

    const foreign = await ask(t, retryWith(r.requestState), bob);
    assert.equal(foreign.status, 400);
    assert.equal(foreign.last.error.data.code, 'GW_ERR_REQUEST_STATE_INVALID');

    // Neither refusal disturbed the parked request: the owner's retry completes it.
    const retry = retryWith(r.requestState);
    const done = await ask(t, retry);
    assert.equal(done.status, 200);
    assert.equal(done.last.id, retry.id);
    assert.equal(done.last.result.resultType, 'complete');
    const text = done.last.result.content.map((c: Msg) => c.text).join('\n');
    assert.match(text, /User provided the requested information/);
    assert.match(text, /Name: Ada Lovelace/);
  });

  test('sampling: a retry that leaves a question unanswered is asked it again; the next one completes', async () => {
    const caps = { sampling: {} };
    const call = (extra: Msg = {}) => request('tools/call', { name: 'trigger-sampling-request', arguments: { prompt: 'Capital of France?' }, ...extra }, { caps });
    const first = (await ask(t, call())).last.result;
    assert.equal(first.resultType, 'input_required');
    const [key] = Object.keys(first.inputRequests);
    assert.equal(first.inputRequests[key].method, 'sampling/createMessage');
    assert.equal(first.inputRequests[key].params.maxTokens, 100);

    const again = (await ask(t, call({ inputResponses: {}, requestState: first.requestState }))).last.result;
    assert.equal(again.resultType, 'input_required');
    assert.deepEqual(again.inputRequests, first.inputRequests);
    assert.notEqual(again.requestState, first.requestState);

    const answer = { role: 'assistant', content: { type: 'text', text: 'Paris.' }, model: 'test-model', stopReason: 'endTurn' };
    const done = await ask(t, call({ inputResponses: { [key]: answer }, requestState: again.requestState }));
    assert.equal(done.last.result.resultType, 'complete');
    assert.match(done.last.result.content[0].text, /Paris\./);
    // The upstream got the answer as the response to its own request, on the same session.
    const asked = seen.find((s) => s.body?.method === 'tools/call' && s.body.params?.name === 'trigger-sampling-request')!;
    const answered = seen.find((s) => s.body?.result?.model === 'test-model')!;
    assert.equal(answered.headers['mcp-session-id'], asked.headers['mcp-session-id']);
  });

  test('a request logLevel sets the upstream session level once, lowering it only when asked for more', async () => {
    const caps = { experimental: { logs: {} } };
    const echo = (level: string) => ask(t, request('tools/call', { name: 'echo', arguments: { message: level } }, { caps, meta: { [META.logLevel]: level } }));
    await echo('warning');
    await echo('warning');
    await echo('debug');
    await echo('error');
    const session = seen.find((s) => s.body?.method === 'tools/call' && s.body.params?.arguments?.message === 'warning')!.headers['mcp-session-id'];
    const levels = seen.filter((s) => s.body?.method === 'logging/setLevel' && s.headers['mcp-session-id'] === session).map((s) => s.body!.params.level);
    assert.deepEqual(levels, ['warning', 'debug']);
  });

  test('subscriptions/listen: acknowledged first, then only opted-in notifications, tagged; closing it ends the upstream GET', async () => {
    const uri = 'demo://resource/dynamic/text/1';
    const body = request('subscriptions/listen', { notifications: { toolsListChanged: true, resourceSubscriptions: [uri] } });
    const listen = await exchange(t, body);
    assert.equal(listen.res.statusCode, 200);
    assert.match(String(listen.res.headers['content-type']), /^text\/event-stream/);
    const events = eventsOf(listen.res);
    const ack = await events.next();
    assert.deepEqual(ack, {
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: { _meta: { [META.subscriptionId]: body.id }, notifications: { toolsListChanged: true, resourceSubscriptions: [uri] } },
    });
    // The same caller and capabilities share the session: this tool makes the upstream send
    // resources/updated for the session's subscriptions on its GET stream, at once.
    const toggled = await ask(t, request('tools/call', { name: 'toggle-subscriber-updates', arguments: {} }));
    assert.match(toggled.last.result.content[0].text, /Started simulated resource updated/);
    // (The upstream's log line about the subscription came on the same GET stream; it was not asked for.)
    const updated = await events.next();
    assert.deepEqual(updated, {
      jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri, _meta: { [META.subscriptionId]: body.id } },
    });
    await ask(t, request('tools/call', { name: 'toggle-subscriber-updates', arguments: {} }));
    const get = seen.find((s) => s.method === 'GET')!;
    assert.equal(get.res.statusCode, 200);
    assert.deepEqual(seen.filter((s) => s.body?.method === 'resources/subscribe').map((s) => s.body!.params.uri), [uri]);
    listen.res.destroy();
    listen.end();
    await closed(get.res);
    const unsubscribe = await made((s) => s.body?.method === 'resources/unsubscribe');
    assert.equal(unsubscribe.body!.params.uri, uri);
  });

  test('a session the upstream forgot is initialized again, transparently', async () => {
    const caps = { experimental: { forgetful: {} } };
    await ask(t, request('tools/list', {}, { caps }));
    const ids = [...upstream.output().matchAll(/Session initialized with ID: (\S+)/g)].map((m) => m[1]);
    const sid = ids[ids.length - 1];
    const del = await fetch(`${upstream.url}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' } });
    assert.equal(del.status, 200);
    const again = await ask(t, request('tools/call', { name: 'echo', arguments: { message: 'still here' } }, { caps }));
    assert.equal(again.status, 200);
    assert.equal(again.last.result.content[0].text, 'Echo: still here');
  });

  test('closing the translator DELETEs its upstream sessions', async () => {
    const own = translatorFor(upstream.url);
    await ask(own.t, request('server/discover'));
    const sid = own.seen[0].res.headers['mcp-session-id'];
    own.t.close();
    const del = await own.made((s) => s.method === 'DELETE');
    assert.equal(del.headers['mcp-session-id'], sid);
    assert.equal(del.res.statusCode, 200);
    del.res.resume();
  });

  test('shapes a 2026 server has: GET is 405, a notification is 202, a batch is 400', async () => {
    const get = await t.dispatch({ method: 'GET', pathAndQuery: '/mcp', headers: {}, body: undefined, principal: alice, signal: new AbortController().signal });
    assert.equal(get.statusCode, 405);
    get.resume();
    const note = await exchange(t, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 12345 } });
    assert.equal(note.res.statusCode, 202);
    note.res.resume();
    const batch = await ask(t, [request('tools/list')] as unknown as Msg);
    assert.equal(batch.status, 400);
    assert.equal(batch.last.error.code, -32600);
    const old = await ask(t, request('tools/list', {}, { meta: { [META.protocolVersion]: '2099-01-01' } }));
    assert.equal(old.status, 400);
    assert.equal(old.last.error.code, -32022);
    assert.deepEqual(old.last.error.data.supported, [MODERN_VERSION]);
    assert.equal(old.last.error.data.requested, '2099-01-01');
  });

  test('refuses what a 2026 server must: a missing envelope, contradicting headers, removed methods', async () => {
    const bare = await ask(t, { jsonrpc: '2.0', id: 71, method: 'tools/list', params: {} });
    assert.deepEqual([bare.status, bare.last.id, bare.last.error.code], [400, 71, -32602]);
    const noCaps = await ask(t, { jsonrpc: '2.0', id: 72, method: 'tools/list', params: { _meta: { [META.protocolVersion]: MODERN_VERSION } } });
    assert.deepEqual([noCaps.status, noCaps.last.error.code], [400, -32602]);
    assert.match(noCaps.last.error.message, /clientCapabilities/);
    const body = request('tools/call', { name: 'echo', arguments: { message: 'x' } });
    const lying = await t.dispatch({
      method: 'POST', pathAndQuery: '/mcp', principal: alice, signal: new AbortController().signal, body: Buffer.from(JSON.stringify(body)),
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': 'not-echo' },
    });
    const lied = JSON.parse(await new Response(lying as unknown as ReadableStream).text());
    assert.deepEqual([lying.statusCode, lied.id, lied.error.code], [400, body.id, -32020]);
    for (const method of ['initialize', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe']) {
      const removed = await ask(t, request(method, method.startsWith('resources/') ? { uri: 'demo://x' } : {}));
      assert.deepEqual([removed.status, removed.last.error.code], [404, -32601], method);
    }
  });
});

describe('2026 client → 2025 upstream answering JSON (SDK v1)', () => {
  let graph: GraphUpstream;
  let t: Translator;
  before(async () => {
    graph = await startGraphUpstream({ json: true, graphs: { g1: ['a', 'b'] } });
    ({ t } = translatorFor(new URL(graph.url).origin));
  });
  after(async () => {
    t.close();
    await graph.close();
  });

  test('a tool call answered with JSON is answered with JSON, in 2026 shape', async () => {
    const body = request('tools/call', { name: 'query_graph', arguments: { graphName: 'g1', query: 'MATCH' } }, { meta: { progressToken: 7 } });
    const { status, type, messages, last } = await ask(t, body);
    assert.equal(status, 200);
    assert.match(type, /^application\/json/);
    assert.equal(messages.length, 1);
    assert.equal(last.id, body.id);
    assert.equal(last.result.resultType, 'complete');
    assert.deepEqual(JSON.parse(last.result.content[0].text), { graph: 'g1', nodes: ['a', 'b'] });
    assert.equal(last.result._meta[META.serverInfo].name, 'graph-upstream');
  });

  test('resources/read carries cache hints', async () => {
    const { last } = await ask(t, request('resources/read', { uri: 'graph://listing' }));
    assert.equal(last.result.resultType, 'complete');
    assert.equal(last.result.cacheScope, 'private');
    assert.equal(last.result.ttlMs, 0);
    assert.equal(last.result.contents[0].text, '- g1');
  });
});
