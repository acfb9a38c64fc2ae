/**
 * The stdio bridge with the real @modelcontextprotocol/server-memory, driven by the official SDK client
 * exactly as the core drives it (secret and principal headers): tenant isolation on disk, sessions
 * sharing one process, and the bridge's own refusals.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bridgeFor, connect, principalHeaders, textOf, refusalOf } from './fixtures.ts';
import type { StdioBridge } from '../../gateway/stdio/bridge.ts';

const INIT = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
};
const ACCEPT = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };

/** Reads the JSON-RPC messages of a response, whether JSON or SSE. */
async function messagesOf(res: Response): Promise<Array<Record<string, any>>> {
  const body = await res.text();
  if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
    return body
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l.length > 6)
      .map((l) => JSON.parse(l.slice(6)));
  }
  return body ? [JSON.parse(body)] : [];
}

describe('stdio bridge with server-memory', () => {
  let dir: string;
  let bridge: StdioBridge;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-stdio-memory-'));
    bridge = await bridgeFor(
      { command: 'mcp-server-memory', pathEnv: { MEMORY_FILE_PATH: 'data/memory-{tenant}.jsonl' } },
      { configDir: dir },
    );
  });
  after(async () => {
    await bridge.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('two tenants each read back only their own entities, from separate files', async () => {
    const a = await connect(bridge, 'acme');
    const b = await connect(bridge, 'globex');
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

    const procs = bridge.processes();
    assert.equal(procs.length, 2);
    assert.notEqual(procs[0].pid, procs[1].pid);
    await a.client.close();
    await b.client.close();
  });

  test('two sessions of one tenant share one process; interleaved calls with colliding ids get their own answers', async () => {
    const s1 = await connect(bridge, 'initech', 'alice');
    const s2 = await connect(bridge, 'initech', 'bob');
    const initech = bridge.processes().filter((p) => p.tenant === 'initech');
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
      const res = await fetch(bridge.target, { method: 'POST', headers: { ...ACCEPT, ...principalHeaders(bridge, 'umbrella', sub) }, body: JSON.stringify(INIT) });
      assert.equal(res.status, 200);
      const sid = res.headers.get('mcp-session-id')!;
      await res.text();
      return sid;
    };
    const [x, y] = await Promise.all([open('x'), open('y')]);
    const call = (sid: string, sub: string, query: string) =>
      fetch(bridge.target, {
        method: 'POST',
        headers: { ...ACCEPT, ...principalHeaders(bridge, 'umbrella', sub), 'mcp-session-id': sid, 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'create_entities', arguments: { entities: [{ name: query, entityType: 't', observations: [] }] } } }),
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
    assert.equal(bridge.processes().filter((p) => p.tenant === 'umbrella').length, 1);
    for (const [sid, sub] of [[x, 'x'], [y, 'y']]) {
      const del = await fetch(bridge.target, { method: 'DELETE', headers: { ...principalHeaders(bridge, 'umbrella', sub), 'mcp-session-id': sid } });
      assert.equal(del.status, 200);
    }
    assert.equal(bridge.processes().find((p) => p.tenant === 'umbrella')?.sessions, 0);
  });

  test('requests without the bridge secret are refused 403 GW_ERR_BRIDGE_FORBIDDEN', async () => {
    for (const headers of [{ ...ACCEPT }, { ...ACCEPT, 'x-mcp-gateway-bridge-key': 'guess' }]) {
      const res = await fetch(bridge.target, { method: 'POST', headers, body: JSON.stringify(INIT) });
      assert.equal(res.status, 403);
      const body = await refusalOf(res);
      assert.equal(body.error.data.code, 'GW_ERR_BRIDGE_FORBIDDEN');
    }
  });

  test('a session used with another tenant or subject is refused 403 GW_ERR_SESSION_PRINCIPAL_MISMATCH', async () => {
    const { client, transport } = await connect(bridge, 'acme', 'alice');
    const sid = transport.sessionId!;
    for (const [tenant, sub] of [['globex', 'alice'], ['acme', 'mallory']]) {
      const res = await fetch(bridge.target, {
        method: 'POST',
        headers: { ...ACCEPT, ...principalHeaders(bridge, tenant, sub), 'mcp-session-id': sid },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      assert.equal(res.status, 403);
      assert.equal((await refusalOf(res)).error.data.code, 'GW_ERR_SESSION_PRINCIPAL_MISMATCH');
    }
    await client.close();
  });

  test('a tenant outside the alphabet is refused 400 GW_ERR_INVALID_TENANT, with the request id', async () => {
    const res = await fetch(bridge.target, { method: 'POST', headers: { ...ACCEPT, ...principalHeaders(bridge, '../etc', 'a') }, body: JSON.stringify(INIT) });
    assert.equal(res.status, 400);
    const body = await refusalOf(res);
    assert.equal(body.id, 1);
    assert.equal(body.error.data.code, 'GW_ERR_INVALID_TENANT');
  });

  test('unknown session 404; a non-initialize request without session 400', async () => {
    const unknown = await fetch(bridge.target, {
      method: 'POST',
      headers: { ...ACCEPT, ...principalHeaders(bridge, 'acme'), 'mcp-session-id': 'nope' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }),
    });
    assert.equal(unknown.status, 404);
    assert.equal((await refusalOf(unknown)).error.data.code, 'GW_ERR_SESSION_NOT_FOUND');
    const noSession = await fetch(bridge.target, {
      method: 'POST',
      headers: { ...ACCEPT, ...principalHeaders(bridge, 'acme') },
      body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'tools/list' }),
    });
    assert.equal(noSession.status, 400);
    const body = await refusalOf(noSession);
    assert.equal(body.id, 4);
    assert.equal(body.error.data.code, 'GW_ERR_INVALID_REQUEST');
  });
});
