/**
 * Sessions a stdio upstream has ended are no longer listed by the admin API: 200 sessions opened
 * through the gateway and abandoned (no DELETE) expire after `idleTimeout`, and /admin/sessions then
 * lists none of them. A client's DELETE and the admin's DELETE end the upstream session too.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { children, waitFor } from './fixtures.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');
const ADMIN = 'ghost-admin-token-0123456789';
const SESSIONS = 200;
const INIT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'ghost', version: '1' } },
});
const HEADERS = { accept: 'application/json, text/event-stream', 'content-type': 'application/json' };

describe('sessions a stdio upstream ended are forgotten by the gateway', () => {
  let gw: TestGateway;
  const listed = async (): Promise<Array<{ id: string; process?: { pid: number } }>> => {
    const res = await fetch(`${gw.adminUrl()}/admin/sessions`, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { sessions: Array<{ id: string; process?: { pid: number } }> }).sessions;
  };
  const open = async (): Promise<string> => {
    const res = await fetch(`${gw.url()}/mcp`, { method: 'POST', headers: HEADERS, body: INIT });
    assert.equal(res.status, 200);
    await res.text();
    return res.headers.get('mcp-session-id')!;
  };

  before(async () => {
    gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  fake:
    stdio: { command: node, args: ["${FAKE}"], idleTimeout: 2s }
routes:
  - { listener: main, path: /mcp, upstream: fake }
admin: { token: ${ADMIN} }
`);
  });
  after(async () => {
    await gw?.close();
    await waitFor('no child left', () => children().pids.length === 0);
  });

  test(`${SESSIONS} abandoned sessions expire upstream and are no longer listed`, async () => {
    const ids = new Set<string>();
    for (let batch = 0; batch < SESSIONS / 20; batch++) {
      for (const id of await Promise.all(Array.from({ length: 20 }, open))) ids.add(id);
    }
    assert.equal(ids.size, SESSIONS);
    // Every one is listed while it lives, and served by the one shared process.
    const before = (await listed()).filter((s) => ids.has(s.id));
    assert.ok(before.length > 0, 'the sessions are listed while they live');
    assert.ok(before.every((s) => (s.process?.pid ?? 0) > 0));
    await waitFor('every abandoned session gone from /admin/sessions', async () => (await listed()).every((s) => !ids.has(s.id)), 60_000, 200);
  });

  test('a DELETE by the client and a DELETE by the admin both end the session and its listing', async () => {
    const byClient = await open();
    const byAdmin = await open();
    const ids = (await listed()).map((s) => s.id);
    assert.ok(ids.includes(byClient) && ids.includes(byAdmin));

    const del = await fetch(`${gw.url()}/mcp`, { method: 'DELETE', headers: { 'mcp-session-id': byClient } });
    assert.equal(del.status, 200);
    await del.text();
    const ended = await fetch(`${gw.adminUrl()}/admin/sessions/${encodeURIComponent(byAdmin)}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    assert.equal(ended.status, 200);
    await ended.text();

    const after = (await listed()).map((s) => s.id);
    assert.ok(!after.includes(byClient) && !after.includes(byAdmin), 'neither is listed any more');
    for (const id of [byClient, byAdmin]) {
      const res = await fetch(`${gw.url()}/mcp`, {
        method: 'POST',
        headers: { ...HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }),
      });
      assert.equal(res.status, 404, 'the upstream session is gone');
      await res.text();
    }
  });
});
