/**
 * examples/federation.yaml as the README tells a user to run it: in a checkout (its relative paths
 * reach the default config's keys, accounts and data), tokens minted by `npm run token`, two tenants
 * seeing different server sets through one URL.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startTestGateway } from '../helpers/gateway.ts';
import { connectV1, textOf } from '../helpers/v2-client.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function mint(checkout: string, tenant: string): string {
  const r = spawnSync(process.execPath, [path.join(root, 'gateway/cli/token.ts'), 'create', '--tenant', tenant, '--sub', 'alice', '--dir', path.join(checkout, '.dev-keys')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim().split('\n').pop()!;
}

test('examples/federation.yaml: acme sees memory and everything, globex only memory', async (t) => {
  const checkout = await mkdtemp(path.join(tmpdir(), 'mcpgw-fed-example-'));
  t.after(() => rm(checkout, { recursive: true, force: true }));
  const dir = path.join(checkout, 'examples');
  await mkdir(dir);
  const yaml = await readFile(path.join(root, 'examples/federation.yaml'), 'utf8');
  const gw = await startTestGateway(yaml, { dir, env: { GATEWAY_BEARER_PORT: '0' } });
  t.after(() => gw.close());
  const url = `${gw.url('bearer')}/mcp`;

  const acme = await connectV1(url, { token: mint(checkout, 'acme') });
  t.after(() => acme.close());
  const acmeTools = (await acme.client.listTools()).tools.map((x) => x.name);
  assert.ok(acmeTools.includes('memory__read_graph') && acmeTools.includes('everything__echo'), acmeTools.join(' '));
  assert.ok(!acmeTools.includes('everything__get-env'), 'tool-policy hides it by its prefixed name');
  await acme.client.callTool({ name: 'memory__create_entities', arguments: { entities: [{ name: 'Ada', entityType: 'person', observations: ['wrote notes'] }] } });
  assert.equal(textOf(await acme.client.callTool({ name: 'everything__echo', arguments: { message: 'hi' } })), 'Echo: hi');

  const globex = await connectV1(url, { token: mint(checkout, 'globex') });
  t.after(() => globex.close());
  const globexTools = (await globex.client.listTools()).tools.map((x) => x.name);
  assert.ok(globexTools.includes('memory__read_graph'));
  assert.ok(!globexTools.some((n) => n.startsWith('everything__')), globexTools.join(' '));
  assert.ok(!textOf(await globex.client.callTool({ name: 'memory__read_graph', arguments: {} })).includes('Ada'));
  // The memory member wrote where the default config keeps each tenant's graph.
  assert.match(await readFile(path.join(checkout, 'data/memory-acme.jsonl'), 'utf8'), /Ada/);
});
