/**
 * Answers on a resumed stream (2025-era SSE polling, SEP-1699), at the tenant boundary.
 *
 * The upstream closes a POST's event stream after its priming event, before answering; the client
 * resumes with `GET` + `Last-Event-ID` on its session and the upstream replays the answer there. The
 * gateway must match that answer to the request it answers (graph-rewrite strips the tenant prefix by
 * it), for that session and principal only, and only once.
 *
 * A purpose-built upstream plays the server: it knows nothing of tenants, and replays on a GET exactly
 * what the test queued for that upstream session — including, to prove isolation, another session's
 * answer under the same id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ResumableRequests } from '../../gateway/messages/resumable.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { startRecordingUpstream, type RecordedRequest, type RecordingUpstream, type Reply } from '../helpers/recording-upstream.ts';
import { AUTH_PLUGINS } from './e2e-support.ts';

const ACCEPT = 'application/json, text/event-stream';
const VERSION = '2025-11-25';

type Rpc = { jsonrpc: '2.0'; id?: unknown; method?: string; params?: unknown; result?: unknown; error?: { code: number; message: string; data?: { code?: string } } };

const call = (id: number, graphName: string) =>
  ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'query_graph', arguments: { graphName, query: 'MATCH' } } });

/** What an upstream answers a `query_graph` call with: the graph name it received, prefixed. */
const answer = (id: number, upstreamGraph: string): Rpc =>
  ({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: `ran on ${upstreamGraph}` }] } });

describe('resumed streams: a replayed answer finds its request, for its own session only', () => {
  let up: RecordingUpstream;
  let gw: TestGateway;
  const tokens: Record<string, string> = {};
  /** Upstream session id → answers to replay on that session's next GET. */
  const replays = new Map<string, Rpc[]>();
  let sessions = 0;

  function upstream(rec: RecordedRequest): Reply {
    const sid = rec.headers['mcp-session-id'] as string | undefined;
    if (rec.method === 'GET') {
      const queued = replays.get(sid ?? '') ?? [];
      replays.delete(sid ?? '');
      return { kind: 'sse', events: queued.map((m, i) => ({ id: `${sid}-replay-${i}`, data: JSON.stringify(m) })) };
    }
    if (rec.method === 'DELETE') return { kind: 'text', status: 200 };
    const m = rec.json as Rpc;
    if (m.method === 'initialize') {
      return {
        kind: 'json', headers: { 'mcp-session-id': `up-${++sessions}` },
        body: { jsonrpc: '2.0', id: m.id, result: { protocolVersion: VERSION, capabilities: { tools: {} }, serverInfo: { name: 'poller', version: '1' } } },
      };
    }
    if (m.id === undefined) return { kind: 'text', status: 202 };
    // Polling: a priming event (an id, empty data), then the connection closes without the answer.
    return { kind: 'sse', events: [{ id: `${sid}-prime-${String(m.id)}`, data: '' }] };
  }

  before(async () => {
    up = await startRecordingUpstream(upstream);
    tokens.acme = await tokenFor('acme');
    tokens.globex = await tokenFor('globex');
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  graphs: { url: ${up.url} }
routes:
  - listener: main
    path: /mcp
    upstream: graphs
    plugins:${AUTH_PLUGINS}
      - { type: graph-rewrite, tools: [query_graph] }
`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  function headers(tenant: string, session?: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      authorization: `Bearer ${tokens[tenant]}`, accept: ACCEPT, 'content-type': 'application/json', 'mcp-protocol-version': VERSION,
      ...(session ? { 'mcp-session-id': session } : {}), ...extra,
    };
  }

  /** Opens a session for a tenant through the gateway: its sealed id, and the upstream's. */
  async function open(tenant: string): Promise<{ sealed: string; upstream: string }> {
    const res = await fetch(`${gw.url()}/mcp`, {
      method: 'POST', headers: headers(tenant),
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: VERSION, capabilities: {}, clientInfo: { name: tenant, version: '1' } } }),
    });
    await res.text();
    assert.equal(res.status, 200);
    const sealed = res.headers.get('mcp-session-id');
    assert.ok(sealed && !sealed.startsWith('up-'), 'the client gets a sealed session id');
    const upstream = `up-${sessions}`;
    return { sealed, upstream };
  }

  /** A call whose stream the upstream closes after priming: returns the SSE text the client got. */
  async function pollingCall(tenant: string, session: string, id: number, graph: string): Promise<string> {
    const res = await fetch(`${gw.url()}/mcp`, { method: 'POST', headers: headers(tenant, session), body: JSON.stringify(call(id, graph)) });
    const text = await res.text();
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    return text;
  }

  /** Resumes on a session: the messages the GET stream delivered. */
  async function resume(tenant: string, session: string, lastEventId?: string): Promise<{ status: number; messages: Rpc[] }> {
    const res = await fetch(`${gw.url()}/mcp`, {
      method: 'GET', headers: headers(tenant, session, lastEventId ? { 'last-event-id': lastEventId } : {}),
    });
    const text = await res.text();
    const messages = text.split('\n').filter((l) => l.startsWith('data: ') && l.length > 6).map((l) => JSON.parse(l.slice(6)) as Rpc);
    return { status: res.status, messages };
  }

  test('the answer replayed on GET + Last-Event-ID reaches its client unprefixed; nobody else can take it', async () => {
    const acme = await open('acme');
    const globex = await open('globex');

    // Both tenants use id 7, each in its own session; neither stream carries an answer.
    const acmePost = await pollingCall('acme', acme.sealed, 7, 'social');
    assert.doesNotMatch(acmePost, /"result"/);
    await pollingCall('globex', globex.sealed, 7, 'social');
    const received = up.requests.filter((r) => r.method === 'POST' && (r.json as Rpc).method === 'tools/call')
      .map((r) => (r.json as { params: { arguments: { graphName: string } } }).params.arguments.graphName);
    assert.deepEqual(received, ['acme_social', 'globex_social'], 'each call reached the upstream prefixed for its tenant');

    // globex's session id with acme's token: the seal's owner check refuses it, the upstream never sees the GET.
    const gets = up.requests.filter((r) => r.method === 'GET').length;
    const stolen = await resume('acme', globex.sealed, `${globex.upstream}-prime-7`);
    assert.equal(stolen.status, 404);
    assert.equal(up.requests.filter((r) => r.method === 'GET').length, gets);

    // An upstream that replays acme's answer on a session with nothing pending: withheld, not matched.
    const idle = await open('globex');
    replays.set(idle.upstream, [answer(7, 'acme_social')]);
    const stray = await resume('globex', idle.sealed);
    assert.equal(stray.messages.length, 1);
    assert.equal(stray.messages[0].error?.data?.code, 'GW_ERR_GRAPH_RESPONSE_UNMATCHED');
    assert.equal(stray.messages[0].result, undefined);

    // An upstream that replays acme's answer on globex's session (same id): globex's GET must not be
    // matched to acme's request, and must not consume it. It is matched to globex's own request (same
    // id, its session), so the result goes through globex's rule: nothing of acme's is unprefixed for it.
    replays.set(globex.upstream, [answer(7, 'acme_social')]);
    const misrouted = await resume('globex', globex.sealed, `${globex.upstream}-prime-7`);
    assert.equal(misrouted.status, 200);
    assert.equal(misrouted.messages.length, 1);
    assert.doesNotMatch(JSON.stringify(misrouted.messages[0]), /"ran on social"/, 'acme\'s graph is never shown to globex under its client name');

    // acme resumes: its answer, matched to its own (rewritten) request, arrives unprefixed.
    replays.set(acme.upstream, [answer(7, 'acme_social')]);
    const resumed = await resume('acme', acme.sealed, `${acme.upstream}-prime-7`);
    assert.equal(resumed.status, 200);
    assert.deepEqual(resumed.messages, [{ jsonrpc: '2.0', id: 7, result: { content: [{ type: 'text', text: 'ran on social' }] } }]);

    // Consumed once: a second replay of the same answer has no request left to answer.
    replays.set(acme.upstream, [answer(7, 'acme_social')]);
    const again = await resume('acme', acme.sealed);
    assert.equal(again.messages.length, 1);
    assert.equal(again.messages[0].error?.data?.code, 'GW_ERR_GRAPH_RESPONSE_UNMATCHED');
  });

  test('a GET without Last-Event-ID matches too; a parked id is not reusable until answered', async () => {
    const acme = await open('acme');
    await pollingCall('acme', acme.sealed, 3, 'sales');

    // Reusing the pending id on the session is refused by the gateway and never forwarded.
    const calls = up.requests.length;
    const dup = await fetch(`${gw.url()}/mcp`, { method: 'POST', headers: headers('acme', acme.sealed), body: JSON.stringify(call(3, 'other')) });
    const dupText = await dup.text();
    assert.match(dupText, /GW_ERR_DUPLICATE_ID/);
    assert.equal(up.requests.length, calls);

    replays.set(acme.upstream, [answer(3, 'acme_sales')]);
    const resumed = await resume('acme', acme.sealed);
    assert.deepEqual(resumed.messages, [{ jsonrpc: '2.0', id: 3, result: { content: [{ type: 'text', text: 'ran on sales' }] } }]);

    // Answered: the id is free again.
    replays.set(acme.upstream, []);
    const reused = await pollingCall('acme', acme.sealed, 3, 'sales');
    assert.doesNotMatch(reused, /GW_ERR_DUPLICATE_ID/);
  });

  test('a session ended by its client takes its parked requests with it', async () => {
    const acme = await open('acme');
    await pollingCall('acme', acme.sealed, 5, 'social');
    const del = await fetch(`${gw.url()}/mcp`, { method: 'DELETE', headers: headers('acme', acme.sealed) });
    await del.text();
    assert.equal(del.status, 200);
    // The upstream (wrongly) still replays on that session: nothing is left to match the answer to.
    replays.set(acme.upstream, [answer(5, 'acme_social')]);
    const late = await resume('acme', acme.sealed);
    assert.equal(late.messages[0]?.error?.data?.code, 'GW_ERR_GRAPH_RESPONSE_UNMATCHED');
  });
});

describe('ResumableRequests: scoping and bounds', () => {
  const request = (id: number) => ({ jsonrpc: '2.0' as const, id, method: 'tools/call', params: { name: 'q', arguments: { id } } });
  const acme = { session: 'S1', owner: Buffer.alloc(16, 1), route: 'r' };

  test('an entry is found only by its session, owner and route, and only once', () => {
    const store = new ResumableRequests();
    store.park(acme, 'n:1', request(1));
    store.park({ ...acme, session: 'S2' }, 'n:1', request(101));
    assert.equal(store.take({ ...acme, owner: Buffer.alloc(16, 2) }, 'n:1'), undefined, 'another owner');
    assert.equal(store.take({ ...acme, route: 'other' }, 'n:1'), undefined, 'another route');
    assert.equal(store.take({ ...acme, session: 'S3' }, 'n:1'), undefined, 'another session');
    assert.equal(store.has('S1', 'n:1'), true, 'a refused lookup consumes nothing');
    assert.deepEqual(store.take(acme, 'n:1'), request(1));
    assert.equal(store.take(acme, 'n:1'), undefined, 'consumed once');
    assert.deepEqual(store.take({ ...acme, session: 'S2' }, 'n:1'), request(101), 'the same id in another session is its own');
    assert.equal(store.size, 0);
  });

  test('bounded per session and in all; a session\'s end releases its entries', () => {
    const store = new ResumableRequests({ perSession: 3, max: 5 });
    for (let i = 1; i <= 5; i++) store.park(acme, `n:${i}`, request(i));
    assert.equal(store.size, 3, 'a session keeps its newest entries only');
    assert.equal(store.has('S1', 'n:2'), false);
    assert.equal(store.has('S1', 'n:5'), true);
    for (let i = 1; i <= 4; i++) store.park({ ...acme, session: `T${i}` }, 'n:1', request(i));
    assert.equal(store.size, 5, 'the total is bounded');
    store.drop('S1');
    assert.equal(store.has('S1', 'n:5'), false);
    assert.ok(store.size <= 4);
  });

  test('bounded in bytes: large requests give way, one larger than the store is not kept', () => {
    const big = (id: number) => ({ ...request(id), params: { name: 'q', arguments: { blob: 'x'.repeat(1000) } } });
    const store = new ResumableRequests({ maxBytes: 2500 });
    for (let i = 1; i <= 3; i++) store.park({ ...acme, session: `B${i}` }, 'n:1', big(i));
    assert.equal(store.size, 2, 'the oldest gave way to stay under maxBytes');
    assert.equal(store.has('B1', 'n:1'), false);
    assert.equal(store.has('B3', 'n:1'), true);
    store.park(acme, 'n:9', { ...request(9), params: { name: 'q', arguments: { blob: 'x'.repeat(3000) } } });
    assert.equal(store.has('S1', 'n:9'), false, 'too large to park');
    assert.equal(store.size, 2);
    store.drop('B3');
    assert.equal(store.size, 1);
  });
});
