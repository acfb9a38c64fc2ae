/**
 * The message path at the tenant boundary: strict correlation (a reused id is refused, never allowed to
 * make a response be filtered by another request's rule), batches of any size, bodies no plugin can
 * inspect, and the legacy session parameter read the way the upstream reads it.
 *
 * A purpose-built upstream plays @falkordb/mcpserver's part: it knows nothing of tenants, so its
 * `list_graphs` answer names every tenant's graphs and only the gateway's filtering stands between them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { startRecordingUpstream, type RecordedRequest, type RecordingUpstream, type Reply } from '../helpers/recording-upstream.ts';
import { AUTH_PLUGINS } from '../tenant/e2e-support.ts';

const ALL_GRAPHS = 'acme_social\nglobex_secret\nglobex_launch';
const ACCEPT = 'application/json, text/event-stream';

type Rpc = { jsonrpc: '2.0'; id?: unknown; method?: string; params?: unknown; result?: unknown; error?: { code: number; message: string; data?: { code?: string } } };

/** Answers like a tenant-blind graph server: every element of a batch, in one JSON body. */
function graphServer(rec: RecordedRequest): Reply {
  const answer = (m: Rpc): Rpc | undefined => {
    if (m.id === undefined) return undefined;
    const name = (m.params as { name?: string } | undefined)?.name;
    const text = name === 'list_graphs' ? ALL_GRAPHS : `ran ${JSON.stringify((m.params as { arguments?: unknown }).arguments ?? {})}`;
    return { jsonrpc: '2.0', id: m.id, result: { content: [{ type: 'text', text }] } };
  };
  if (Array.isArray(rec.json)) return { kind: 'json', body: (rec.json as Rpc[]).map(answer).filter(Boolean) };
  const one = answer(rec.json as Rpc);
  return one ? { kind: 'json', body: one } : { kind: 'text', status: 202 };
}

const call = (id: unknown, name: string, args: Record<string, unknown> = {}) =>
  ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

describe('message path: the tenant boundary', () => {
  let up: RecordingUpstream;
  let gw: TestGateway;
  let token: string;

  before(async () => {
    up = await startRecordingUpstream(graphServer);
    token = await tokenFor('acme');
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

  async function post(body: unknown, headers: Record<string, string> = {}, path = '/mcp') {
    const res = await fetch(gw.url() + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: ACCEPT, ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, json: text ? JSON.parse(text) as Rpc | Rpc[] : undefined };
  }

  test('a batch reusing a pending id: the second request is refused -32600 and never forwarded, so no listing leaks', async () => {
    const before = up.requests.length;
    const r = await post([call(1, 'list_graphs'), call(1, 'query_graph', { graphName: 'social', query: 'MATCH' })]);
    assert.equal(r.status, 200);
    const answers = r.json as Rpc[];
    assert.equal(answers.length, 2);
    const listing = answers.find((a) => a.result)!;
    const text = (listing.result as { content: Array<{ text: string }> }).content[0].text;
    assert.equal(text, 'social', 'the listing is filtered by the list_graphs rule: only acme\'s graph, unprefixed');
    assert.doesNotMatch(r.text, /globex/);
    const refused = answers.find((a) => a.error)!;
    assert.equal(refused.id, 1);
    assert.equal(refused.error!.code, -32600);
    assert.equal(refused.error!.data?.code, 'GW_ERR_DUPLICATE_ID');
    const sent = up.requests.slice(before).map((q) => q.json as Rpc[]);
    assert.equal(sent.length, 1);
    assert.equal(sent[0].length, 1, 'the duplicate never reached the upstream');
    assert.equal((sent[0][0].params as { name: string }).name, 'list_graphs');
  });

  test('ids are per session: a concurrent POST reusing an id still pending in the same session is refused', async () => {
    up.respond((rec) => {
      const m = rec.json as Rpc;
      if (m.method === 'initialize') return { kind: 'json', headers: { 'mcp-session-id': 'upstream-session-1' }, body: { jsonrpc: '2.0', id: m.id, result: {} } };
      if ((m.params as { arguments?: { query?: string } })?.arguments?.query === 'HOLD') return { kind: 'never' };
      return graphServer(rec);
    });
    try {
      const init = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: {} });
      const session = init.headers.get('mcp-session-id')!;
      assert.ok(session);
      const held = new AbortController();
      const first = fetch(gw.url() + '/mcp', {
        method: 'POST', signal: held.signal,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: ACCEPT, 'mcp-session-id': session },
        body: JSON.stringify(call(5, 'query_graph', { graphName: 'social', query: 'HOLD' })),
      }).catch(() => undefined);
      await up.waitFor(() => up.requests.some((q) => (q.json as Rpc)?.id === 5), 20_000, 'the first request');
      const second = await post(call(5, 'list_graphs'), { 'mcp-session-id': session });
      assert.equal(second.status, 400);
      assert.equal((second.json as Rpc).error!.data?.code, 'GW_ERR_DUPLICATE_ID');
      assert.equal((second.json as Rpc).id, 5);
      assert.equal(up.requests.filter((q) => (q.json as Rpc)?.id === 5).length, 1);
      // Once the first exchange is over, its id is free again.
      held.abort();
      await first;
      // The gateway frees the exchange's ids before it aborts the upstream call, so once the upstream
      // has seen the abort the id is free.
      await up.waitFor(() => up.requests.find((q) => (q.json as Rpc)?.id === 5)!.aborted, 20_000, 'the abort');
      const again = await post(call(5, 'list_graphs'), { 'mcp-session-id': session });
      assert.equal(again.status, 200);
    } finally {
      up.respond(graphServer);
    }
  });

  test('a batch of 600 requests keeps every answer, each filtered by its own request', async () => {
    const batch = Array.from({ length: 600 }, (_, i) => (i % 2 ? call(i, 'list_graphs') : call(i, 'query_graph', { graphName: `g${i}`, query: 'MATCH' })));
    const r = await post(batch);
    assert.equal(r.status, 200);
    const answers = r.json as Rpc[];
    assert.equal(answers.length, 600);
    const byId = new Map(answers.map((a) => [a.id, a]));
    for (let i = 0; i < 600; i++) {
      const text = (byId.get(i)!.result as { content: Array<{ text: string }> }).content[0].text;
      if (i % 2) assert.equal(text, 'social', `answer ${i}`);
      else assert.match(text, new RegExp(`"graphName":"g${i}"`), `answer ${i}: the echoed name is unprefixed again`);
    }
    const sent = up.requests.at(-1)!.json as Rpc[];
    assert.equal(sent.length, 600);
    assert.equal((sent[0].params as { arguments: { graphName: string } }).arguments.graphName, 'acme_g0');
  });

  test('an upstream answering text/plain where plugins read messages: 502 GW_ERR_UPSTREAM_UNINSPECTABLE, the text never reaches the client', async () => {
    up.respond(() => ({ kind: 'text', status: 200, body: ALL_GRAPHS }));
    try {
      const r = await post(call(9, 'list_graphs'));
      assert.equal(r.status, 502);
      assert.equal((r.json as Rpc).error!.data?.code, 'GW_ERR_UPSTREAM_UNINSPECTABLE');
      assert.equal((r.json as Rpc).id, 9);
      assert.doesNotMatch(r.text, /globex/);
    } finally {
      up.respond(graphServer);
    }
  });

  test('an upstream error with id null passes through unchanged', async () => {
    const error = { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error: upstream could not read the body' } };
    up.respond(() => ({ kind: 'json', status: 400, body: error }));
    try {
      const r = await post(call(10, 'list_graphs'));
      assert.equal(r.status, 400);
      assert.deepEqual(r.json, error);
    } finally {
      up.respond(graphServer);
    }
  });
});

describe('message path: the legacy transport', () => {
  let up: RecordingUpstream;
  let gw: TestGateway;
  let token: string;

  before(async () => {
    up = await startRecordingUpstream((rec) => {
      if (rec.method === 'GET') return { kind: 'sse', events: [{ event: 'endpoint', data: '/message?sessionId=upstream-legacy-1' }], keepOpen: true };
      return { kind: 'text', status: 202, body: 'Accepted' };
    });
    token = await tokenFor('acme');
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  legacy: { url: ${up.url} }
routes:
  - listener: main
    path: /
    upstream: legacy
    plugins:${AUTH_PLUGINS}
      - { type: graph-rewrite, tools: [query_graph] }
`, { env: GATEWAY_ENV });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  const headers = () => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });

  test('a percent-encoded sessionId (?session%49d=) is still the session parameter: unsealed values are refused', async () => {
    const before = up.requests.length;
    for (const query of ['sessionId=upstream-legacy-1', 'session%49d=upstream-legacy-1', 'sess%69onId=upstream-legacy-1']) {
      const res = await fetch(`${gw.url()}/message?${query}`, { method: 'POST', headers: headers(), body: JSON.stringify(call(1, 'list_graphs')) });
      assert.equal(res.status, 404, query);
      const body = (await res.json()) as Rpc;
      assert.equal(body.error!.data?.code, 'GW_ERR_SESSION_NOT_FOUND', query);
    }
    assert.equal(up.requests.length, before, 'none reached the upstream');
  });

  test('two POSTs of one legacy session reusing a pending id: the second is answered -32600 on the stream and never forwarded', async () => {
    const stream = await fetch(`${gw.url()}/sse`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    const reader = stream.body!.getReader();
    let text = '';
    const readUntil = async (re: RegExp) => {
      while (!re.test(text)) text += Buffer.from((await reader.read()).value!).toString();
    };
    await readUntil(/event: endpoint\ndata: (.*)\n/);
    const endpoint = /event: endpoint\ndata: (.*)\n/.exec(text)![1];
    const before = up.requests.length;
    const first = await fetch(gw.url() + endpoint, { method: 'POST', headers: headers(), body: JSON.stringify(call(7, 'query_graph', { graphName: 'social', query: 'MATCH' })) });
    assert.equal(first.status, 202);
    const second = await fetch(gw.url() + endpoint, { method: 'POST', headers: headers(), body: JSON.stringify(call(7, 'list_graphs')) });
    assert.equal(second.status, 202);
    await readUntil(/GW_ERR_DUPLICATE_ID/);
    const event = JSON.parse(/data: (.*GW_ERR_DUPLICATE_ID.*)\n/.exec(text)![1]) as Rpc;
    assert.equal(event.id, 7);
    assert.equal(event.error!.code, -32600);
    const posts = up.requests.slice(before).filter((q) => q.method === 'POST');
    assert.equal(posts.length, 1, 'only the first reached the upstream');
    await reader.cancel();
  });
});

