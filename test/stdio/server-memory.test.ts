/**
 * A stdio upstream with the real @modelcontextprotocol/server-memory, driven by the official SDK client
 * exactly as the core drives it (each exchange dispatched in process with the verified principal):
 * tenant isolation on disk, sessions sharing one process, and the upstream's own refusals.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { upstreamFor, connect, dispatchRaw, messagesOf, principal, textOf, refusalOf } from './fixtures.ts';
import type { StdioUpstream } from '../../gateway/stdio/upstream.ts';

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};

describe('stdio upstream with server-memory', () => {
  let dir: string;
  let upstream: StdioUpstream;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-stdio-memory-'));
    upstream = upstreamFor(
      { command: 'mcp-server-memory', pathEnv: { MEMORY_FILE_PATH: 'data/memory-{tenant}.jsonl' } },
      { configDir: dir },
    );
  });
  after(async () => {
    await upstream.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('two tenants each read back only their own entities, from separate files', async () => {
    const a = await connect(upstream, 'acme');
    const b = await connect(upstream, 'globex');
    await a.client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'acme-secret', entityType: 'plan', observations: ['acme only'] }] } });
    await b.client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'globex-secret', entityType: 'plan', observations: ['globex only'] }] } });

    const graphA = JSON.parse(textOf(await a.client.callTool({ name: 'read_graph', arguments: {} })));
    const graphB = JSON.parse(textOf(await b.client.callTool({ name: 'read_graph', arguments: {} })));
    assert.deepEqual(graphA.entities.map((e: { name: string }) => e.name), ['acme-secret']);
    assert.deepEqual(graphB.entities.map((e: { name: string }) => e.name), ['globex-secret']);

    const files = (await readdir(path.join(dir, 'data'))).sort();
    assert.deepEqual(files, ['memory-acme.jsonl', 'memory-globex.jsonl']);
    const fileA = await readFile(path.join(dir, 'data/memory-acme.jsonl'), 'utf8');
    const fileB = await readFile(path.join(dir, 'data/memory-globex.jsonl'), 'utf8');
    assert.match(fileA, /acme-secret/);
    assert.doesNotMatch(fileA, /globex/);
    assert.match(fileB, /globex-secret/);
    assert.doesNotMatch(fileB, /acme/);

    const procs = upstream.processes();
    assert.equal(procs.length, 2);
    assert.notEqual(procs[0].pid, procs[1].pid);
    await a.client.close();
    await b.client.close();
  });

  test('two sessions of one tenant share one process; interleaved calls with colliding ids get their own answers', async () => {
    const s1 = await connect(upstream, 'initech', 'alice');
    const s2 = await connect(upstream, 'initech', 'bob');
    const initech = upstream.processes().filter((p) => p.tenant === 'initech');
    assert.equal(initech.length, 1, 'one shared process for the tenant');
    assert.equal(initech[0].sessions, 2);

    // Both SDK clients number their requests 1, 2, 3 …: every call below collides with one of the
    // other session's. Each create_entities answer lists exactly the entity that call created.
    const N = 25;
    const calls = [];
    for (let i = 0; i < N; i++) {
      for (const [who, s] of [['alice', s1], ['bob', s2]] as const) {
        const name = `${who}-${i}`;
        calls.push(
          s.client
            .callTool({ name: 'create_entities', arguments: { entities: [{ name, entityType: 'note', observations: [who] }] } })
            .then((r) => ({ name, got: JSON.parse(textOf(r)).map((e: { name: string }) => e.name) })),
        );
      }
    }
    for (const { name, got } of await Promise.all(calls)) assert.deepEqual(got, [name]);

    // Reads too: server-memory's concurrent writes race each other on its file (its own limitation),
    // so the graph is written once, then both sessions read their own names concurrently.
    await s1.client.callTool({
      name: 'create_entities',
      arguments: { entities: Array.from({ length: N }, (_, i) => ({ name: `note-${i}`, entityType: 'note', observations: [`obs-${i}`] })) },
    });
    const reads = [];
    for (let i = 0; i < N; i++) {
      for (const s of [s1, s2]) {
        const want = `note-${s === s1 ? i : N - 1 - i}`;
        reads.push(s.client.callTool({ name: 'open_nodes', arguments: { names: [want] } }).then((r) => ({ want, got: JSON.parse(textOf(r)).entities.map((e: { name: string }) => e.name) })));
      }
    }
    for (const { want, got } of await Promise.all(reads)) assert.deepEqual(got, [want]);
    await s1.client.close();
    await s2.client.close();
  });

  test('raw: the same request id sent concurrently on two sessions is answered on each', async () => {
    const open = async (sub: string) => {
      const res = await dispatchRaw(upstream, { tenant: 'umbrella', sub, body: INIT });
      assert.equal(res.status, 200);
      return String(res.headers['mcp-session-id']);
    };
    const [x, y] = await Promise.all([open('x'), open('y')]);
    const call = (sid: string, sub: string, query: string) =>
      dispatchRaw(upstream, {
        tenant: 'umbrella',
        sub,
        headers: { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' },
        body: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'create_entities', arguments: { entities: [{ name: query, entityType: 't', observations: [] }] } } },
      }).then(messagesOf);
    const [mx, my] = await Promise.all([call(x, 'x', 'from-x'), call(y, 'y', 'from-y')]);
    assert.equal(mx.length, 1);
    assert.equal(my.length, 1);
    assert.equal(mx[0].id, 7);
    assert.equal(my[0].id, 7);
    assert.match(mx[0].result.content[0].text, /from-x/);
    assert.match(my[0].result.content[0].text, /from-y/);
    assert.doesNotMatch(mx[0].result.content[0].text, /from-y/);
    // The second session's initialize was answered from the cache: one process, initialized once.
    assert.equal(upstream.processes().filter((p) => p.tenant === 'umbrella').length, 1);
    for (const [sid, sub] of [[x, 'x'], [y, 'y']]) {
      const del = await dispatchRaw(upstream, { method: 'DELETE', tenant: 'umbrella', sub, headers: { 'mcp-session-id': sid } });
      assert.equal(del.status, 200);
    }
    assert.equal(upstream.processes().find((p) => p.tenant === 'umbrella')?.sessions, 0);
  });

  test('one request id twice in flight on one session is refused, not guessed', async () => {
    const { client, transport } = await connect(upstream, 'dup', 'alice');
    const sid = transport.sessionId!;
    const body = { jsonrpc: '2.0', id: 'same', method: 'tools/call', params: { name: 'read_graph', arguments: {} } };
    const batch = await dispatchRaw(upstream, { tenant: 'dup', sub: 'alice', headers: { 'mcp-session-id': sid }, body: [body, body] });
    assert.equal(batch.status, 400);
    assert.equal((await refusalOf(batch)).error.data.code, 'GW_ERR_DUPLICATE_ID');
    await client.close();
  });

  test('a session used with another tenant or subject is refused 403 GW_ERR_SESSION_PRINCIPAL_MISMATCH', async () => {
    const { client, transport } = await connect(upstream, 'acme', 'alice');
    const sid = transport.sessionId!;
    for (const [tenant, sub] of [['globex', 'alice'], ['acme', 'mallory']]) {
      const res = await dispatchRaw(upstream, { tenant, sub, headers: { 'mcp-session-id': sid }, body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
      assert.equal(res.status, 403);
      assert.equal((await refusalOf(res)).error.data.code, 'GW_ERR_SESSION_PRINCIPAL_MISMATCH');
    }
    await client.close();
  });

  test('a tenant outside the alphabet is refused 400 GW_ERR_INVALID_TENANT, with the request id', async () => {
    const res = await dispatchRaw(upstream, { tenant: '../etc', sub: 'a', body: INIT });
    assert.equal(res.status, 400);
    const body = await refusalOf(res);
    assert.equal(body.id, 1);
    assert.equal(body.error.data.code, 'GW_ERR_INVALID_TENANT');
  });

  test('unknown session 404; a non-initialize request without session 400; transport refusals as the SDK\'s', async () => {
    const unknown = await dispatchRaw(upstream, { tenant: 'acme', headers: { 'mcp-session-id': 'nope' }, body: { jsonrpc: '2.0', id: 3, method: 'tools/list' } });
    assert.equal(unknown.status, 404);
    assert.equal((await refusalOf(unknown)).error.data.code, 'GW_ERR_SESSION_NOT_FOUND');
    const noSession = await dispatchRaw(upstream, { tenant: 'acme', body: { jsonrpc: '2.0', id: 4, method: 'tools/list' } });
    assert.equal(noSession.status, 400);
    const body = await refusalOf(noSession);
    assert.equal(body.id, 4);
    assert.equal(body.error.data.code, 'GW_ERR_INVALID_REQUEST');

    const { client, transport } = await connect(upstream, 'acme', 'carol');
    const sid = transport.sessionId!;
    const on = { tenant: 'acme', sub: 'carol' };
    const accept = await dispatchRaw(upstream, { ...on, headers: { 'mcp-session-id': sid, accept: 'application/json' }, body: { jsonrpc: '2.0', id: 5, method: 'tools/list' } });
    assert.equal(accept.status, 406);
    const type = await dispatchRaw(upstream, { ...on, headers: { 'mcp-session-id': sid, 'content-type': 'text/plain' }, body: { jsonrpc: '2.0', id: 6, method: 'tools/list' } });
    assert.equal(type.status, 415);
    const parse = await dispatchRaw(upstream, { ...on, headers: { 'mcp-session-id': sid }, body: 'not json-rpc' });
    assert.equal(parse.status, 400);
    assert.equal((await refusalOf(parse)).error.code, -32700);
    const reinit = await dispatchRaw(upstream, { ...on, headers: { 'mcp-session-id': sid }, body: INIT });
    assert.equal(reinit.status, 400);
    const put = await dispatchRaw(upstream, { ...on, method: 'PUT', headers: { 'mcp-session-id': sid } });
    assert.equal(put.status, 405);
    assert.equal(put.headers.allow, 'GET, POST, DELETE');
    await client.close();

    // One standalone GET stream per session: a second one is a conflict.
    const raw = String((await dispatchRaw(upstream, { ...on, body: INIT })).headers['mcp-session-id']);
    const get = { ...on, method: 'GET', headers: { 'mcp-session-id': raw, accept: 'text/event-stream' } };
    const exchange = new AbortController();
    const first = await upstream.dispatch({
      method: 'GET', pathAndQuery: '/mcp', headers: get.headers, body: undefined, principal: principal('acme', 'carol'), signal: exchange.signal,
    });
    assert.equal(first.statusCode, 200);
    assert.equal((await dispatchRaw(upstream, get)).status, 409);
    exchange.abort(); // the first stream's exchange ends: it is released
    assert.equal(first.destroyed, true);
    await dispatchRaw(upstream, { ...on, method: 'DELETE', headers: { 'mcp-session-id': raw } });
  });
});
