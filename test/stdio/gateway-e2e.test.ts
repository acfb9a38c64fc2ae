/**
 * Stdio upstreams through the real gateway: server-memory behind JWT-authenticated routes on two
 * listeners (header token and URL token). Each tenant reads back only its own graph, from its own file;
 * a client cannot pick another tenant's process by sending principal headers of its own (the tenant comes
 * from the verified token, never from a header); the
 * admin API lists the processes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { makeKey, sign, ISSUER, type TestKey } from '../fixtures/identity/tokens.ts';
import { children, textOf, waitFor } from './fixtures.ts';

const AUD = 'mcp-gateway-stdio-test';
const ADMIN_TOKEN = 'stdio-admin-token-0123456789abcdef';

describe('stdio upstream through the gateway', () => {
  let tg: TestGateway;
  let key: TestKey;
  const token = (tenant: string, sub = 'alice') => sign(key, { aud: AUD, tenant_id: tenant, sub });

  before(async () => {
    key = await makeKey('ed25519', 'ed-stdio');
    const jwt = `
      - type: jwt
        keys: { jwksFile: jwks.json }
        algorithms: [EdDSA]
        issuer: "${ISSUER}"
        audience: ${AUD}`;
    tg = await startTestGateway(
      `
listeners:
  - { name: header, port: 0 }
  - { name: url, port: 0 }
upstreams:
  memory:
    stdio:
      command: mcp-server-memory
      pathEnv: { MEMORY_FILE_PATH: "data/memory-{tenant}.jsonl" }
routes:
  - listener: header
    path: /mcp
    upstream: memory
    plugins:
      - { type: token, sources: [header] }${jwt}
  - listener: url
    path: /mcp
    upstream: memory
    plugins:
      - { type: token, sources: [query] }${jwt}
admin: { token: ${ADMIN_TOKEN} }
`,
      { files: { 'jwks.json': JSON.stringify({ keys: [key.jwk] }) } },
    );
  });
  after(async () => {
    await tg?.close();
    await waitFor('no child left after the gateway closed', () => children().pids.length === 0);
  });

  async function graphNames(c: Client): Promise<string[]> {
    const graph = JSON.parse(textOf(await c.callTool({ name: 'read_graph', arguments: {} })));
    return graph.entities.map((e: { name: string }) => e.name).sort();
  }

  test('two tenants on both listeners: each reads back only its own entities, from separate files', async () => {
    const acmeHeader = await connectClient(`${tg.url('header')}/mcp`, { bearer: await token('acme') });
    const globexUrl = await connectClient(`${tg.url('url')}/mcp?token=${await token('globex', 'bob')}`);
    try {
      await acmeHeader.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'acme-plan', entityType: 'doc', observations: ['a'] }] } });
      await globexUrl.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'globex-plan', entityType: 'doc', observations: ['g'] }] } });
      assert.deepEqual(await graphNames(acmeHeader), ['acme-plan']);
      assert.deepEqual(await graphNames(globexUrl), ['globex-plan']);

      // acme again, through the other listener: the same tenant process and data.
      const acmeUrl = await connectClient(`${tg.url('url')}/mcp?token=${await token('acme', 'carol')}`);
      try {
        assert.deepEqual(await graphNames(acmeUrl), ['acme-plan']);
      } finally {
        await acmeUrl.close();
      }

      assert.deepEqual((await readdir(path.join(tg.dir, 'data'))).filter((f) => f.startsWith('memory-')).sort(), ['memory-acme.jsonl', 'memory-globex.jsonl']);
      assert.doesNotMatch(await readFile(path.join(tg.dir, 'data/memory-acme.jsonl'), 'utf8'), /globex/);
      assert.doesNotMatch(await readFile(path.join(tg.dir, 'data/memory-globex.jsonl'), 'utf8'), /acme/);
    } finally {
      await acmeHeader.close();
      await globexUrl.close();
    }
  });

  test('a client sending the principal headers itself cannot reach another tenant\'s process', async () => {
    const forged = await connectClient(`${tg.url('header')}/mcp`, {
      bearer: await token('acme'),
      headers: { 'x-mcp-gateway-tenant': 'globex', 'x-mcp-gateway-sub': 'bob', 'x-mcp-gateway-bridge-key': 'guess' },
    });
    try {
      assert.deepEqual(await graphNames(forged), ['acme-plan']);
    } finally {
      await forged.close();
    }
  });

  test('GET /admin/processes lists one process per tenant with pid, sessions, memory and uptime', async () => {
    const c = await connectClient(`${tg.url('header')}/mcp`, { bearer: await token('acme') });
    try {
      const res = await fetch(`${tg.adminUrl()}/admin/processes`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      assert.equal(res.status, 200);
      const body = (await res.json()) as unknown;
      const list = (Array.isArray(body) ? body : (body as { processes: unknown[] }).processes) as Array<Record<string, unknown>>;
      const acme = list.find((p) => p.pool === 'acme');
      assert.ok(acme, JSON.stringify(body));
      assert.equal(acme.upstream, 'memory');
      assert.ok(typeof acme.pid === 'number' && acme.pid > 0);
      assert.ok((acme.sessions as number) >= 1);
      assert.ok(typeof acme.uptimeMs === 'number');
      assert.ok(list.some((p) => p.pool === 'globex'));
      assert.ok(children().pids.includes(acme.pid as number));
    } finally {
      await c.close();
    }
  });
});
