/**
 * The sessions admin API against a real gateway: per-tenant server-memory processes behind JWT auth,
 * the SDK client as the user, the admin listener as the operator.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { authPlugins, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';

const ADMIN = 'admin-e2e-token';

interface AdminSession { id: string; tenant?: string; subject?: string; route: string; transport: string; upstream: string; process?: { pool: string; pid: number } }

describe('sessions admin API through a running gateway', () => {
  let gw: TestGateway;
  const admin = (path: string, init: RequestInit = {}) =>
    fetch(gw.adminUrl() + path, { ...init, headers: { authorization: `Bearer ${ADMIN}`, ...init.headers } });

  before(async () => {
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  memory:
    stdio:
      command: mcp-server-memory
      poolKey: '{tenant}'
      pathEnv:
        MEMORY_FILE_PATH: data/memory-{tenant}.jsonl
routes:
  - listener: main
    path: /mcp
    upstream: memory
    plugins: ${authPlugins()}
admin: { token: ${ADMIN} }
`, { env: GATEWAY_ENV });
  });
  after(() => gw?.close());

  test('lists sessions with their owner and process, lists processes, and ends a session', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(gw.url() + '/mcp'), {
      requestInit: { headers: { authorization: `Bearer ${await tokenFor('acme', { sub: 'alice' })}` } },
    });
    const client = new Client({ name: 'admin-e2e', version: '1' });
    await client.connect(transport);
    try {
      await client.callTool({ name: 'read_graph', arguments: {} });
      const sessionId = transport.sessionId!;

      assert.equal((await fetch(gw.adminUrl() + '/admin/sessions')).status, 401, 'the admin token is required');

      const listed = (await (await admin('/admin/sessions')).json()) as { sessions: AdminSession[] };
      const mine = listed.sessions.find((s) => s.id === sessionId);
      assert.ok(mine, 'the client-facing (sealed) session id is listed');
      assert.equal(mine.tenant, 'acme');
      assert.equal(mine.subject, 'alice');
      assert.equal(mine.transport, 'streamable-http');
      assert.equal(mine.upstream, 'memory');
      assert.equal(mine.process?.pool, 'acme');
      assert.ok((mine.process?.pid ?? 0) > 0);

      const processes = (await (await admin('/admin/processes')).json()) as { processes: Array<{ pool: string; pid: number; sessions: number }> };
      const proc = processes.processes.find((p) => p.pool === 'acme');
      assert.equal(proc?.pid, mine.process?.pid);
      assert.equal(proc?.sessions, 1);

      const ended = await admin(`/admin/sessions/${encodeURIComponent(sessionId)}`, { method: 'DELETE' });
      assert.equal(ended.status, 200);
      assert.equal((await admin(`/admin/sessions/${encodeURIComponent(sessionId)}`, { method: 'DELETE' })).status, 404);

      // The upstream session is gone: the client's next call on it is refused by the upstream.
      await assert.rejects(client.callTool({ name: 'read_graph', arguments: {} }));
      const after = (await (await admin('/admin/sessions')).json()) as { sessions: AdminSession[] };
      assert.equal(after.sessions.some((s) => s.id === sessionId), false);
    } finally {
      await client.close().catch(() => undefined);
    }
  });
});
