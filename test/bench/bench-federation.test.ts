/**
 * The bench's federation row (bench/federation.ts): its gateway.yaml, the request it sends, its target,
 * the upstream answering what a federation asks of a member, and the row's session against a real
 * gateway.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { GatewayConfigSchema } from '../../config/schema.ts';
import { gatewayYaml, mintCredentials } from '../../bench/gateway-rows.ts';
import { FEDERATED_TOOL, federatedToolCall, federationUpstreams, startFederationRow } from '../../bench/federation.ts';
import { evaluateTargets, type RowOutcome } from '../../bench/report.ts';
import { readyOrStop, spawnChild, waitForLine, type BenchChild } from '../../bench/processes.ts';
import type { LoadResult } from '../../bench/load.ts';

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench');
const TOOL_CALL = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'query_graph', arguments: { graphName: 'social', query: 'MATCH (n) RETURN count(n)' } } });

const load = (cpuUsPerReq: number): LoadResult => ({
  responses: 1000, ok: 1000, non2xx: 0, errors: 0, reqPerSec: 1000, p50Ms: 1, p99Ms: 2, cpuUsPerReq, peakRssBytes: 50e6,
});

test('the federation row\'s gateway.yaml satisfies the gateway schema: one member, every name prefixed', () => {
  const yaml = gatewayYaml({ port: 4321, upstreamUrl: 'http://127.0.0.1:1234/mcp', plugins: [], upstreams: federationUpstreams(), route: { upstream: 'fed' } });
  const parsed = GatewayConfigSchema.safeParse(parse(yaml));
  assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
  assert.equal(parsed.data!.routes[0].upstream, 'fed');
  assert.equal(parsed.data!.routes[0].plugins.length, 0);
  const fed = (parse(yaml) as { upstreams: Record<string, { federation?: { prefix: string; members: Record<string, { prefix: string }> } }> }).upstreams.fed.federation!;
  assert.equal(fed.prefix, 'always');
  assert.deepEqual(Object.keys(fed.members), ['up']);
  assert.equal(FEDERATED_TOOL, `${fed.members.up.prefix}__query_graph`);
});

test('the federation row sends the request rows\' call under the prefixed name', () => {
  const sent = JSON.parse(federatedToolCall(TOOL_CALL)) as { params: { name: string; arguments: unknown } };
  assert.equal(sent.params.name, 'bench__query_graph');
  assert.deepEqual(sent.params.arguments, (JSON.parse(TOOL_CALL) as { params: { arguments: unknown } }).params.arguments);
});

test('the federation target: CPU per request at most 1.5× the no-plugin route', () => {
  const rows = (fed: number): RowOutcome[] => [
    { id: 'gateway', label: 'gw', load: load(400) },
    { id: 'federation', label: 'fed', load: load(fed) },
  ];
  const verdict = (fed: number) => evaluateTargets(rows(fed), [], {}).find((v) => v.what.startsWith('federation (one member)'));
  assert.equal(verdict(580)?.pass, true);
  assert.equal(verdict(580)?.limit, 1.5);
  assert.equal(verdict(620)?.pass, false);
  assert.equal(evaluateTargets([{ id: 'federation', label: 'fed', load: load(500) }], [], {}).length, 0, 'no verdict without the no-plugin row');
});

async function startUpstream(): Promise<{ child: BenchChild; url: string }> {
  const child = spawnChild({ name: 'upstream', command: process.execPath, args: [path.join(benchDir, 'upstream.ts')], env: { BENCH_SSE_INTERVAL_MS: '0' } });
  const port = await readyOrStop(child, waitForLine(child, /listening (\d+)/));
  return { child, url: `http://127.0.0.1:${port}/mcp` };
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) => fetch(url, {
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
  body: JSON.stringify(body),
});

test('the upstream answers initialize, notifications and tools/list as a stateless MCP server', { timeout: 30_000 }, async () => {
  const up = await startUpstream();
  try {
    const init = await post(up.url, { jsonrpc: '2.0', id: 'i', method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
    assert.equal(init.status, 200);
    assert.equal(init.headers.get('mcp-session-id'), null, 'stateless: no session id');
    const answer = await init.json() as { id: string; result: { protocolVersion: string; capabilities: { tools?: object }; serverInfo: { name: string } } };
    assert.equal(answer.id, 'i');
    assert.equal(answer.result.protocolVersion, '2025-06-18', 'the version asked for, when known');
    assert.ok(answer.result.capabilities.tools);
    assert.equal(answer.result.serverInfo.name, 'bench-upstream');

    const unknown = await (await post(up.url, { jsonrpc: '2.0', id: 2, method: 'initialize', params: { protocolVersion: '1999-01-01' } })).json() as { result: { protocolVersion: string } };
    assert.equal(unknown.result.protocolVersion, '2025-11-25', 'an unknown version is answered with the newest');

    assert.equal((await post(up.url, { jsonrpc: '2.0', method: 'notifications/initialized' })).status, 202);
    const list = await (await post(up.url, { jsonrpc: '2.0', id: 3, method: 'tools/list' })).json() as { result: { tools: Array<{ name: string; inputSchema: object }> } };
    assert.deepEqual(list.result.tools.map((t) => t.name), ['query_graph']);

    // What the other rows measure is unchanged.
    const call = await (await post(up.url, JSON.parse(TOOL_CALL))).json() as { result: { content: Array<{ text: string }> } };
    assert.equal(call.result.content[0].text, 'graph social: 1 row');
  } finally {
    await up.child.stop();
  }
});

test('the federation row initializes once and its calls carry the session', { timeout: 60_000 }, async () => {
  const up = await startUpstream();
  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-bench-fed-'));
  const children: BenchChild[] = [];
  try {
    const started = await startFederationRow({ baseDir: dir, upstreamUrl: up.url, creds: await mintCredentials(), children, toolCall: TOOL_CALL, log: () => {} });
    assert.ok('target' in started, `the row did not start: ${'note' in started ? started.note : ''}`);
    const t = started.target;
    assert.equal(children.length, 1, 'its gateway is handed to the run to stop');
    assert.equal(t.headers['mcp-protocol-version'], '2025-11-25');
    assert.ok(t.headers['mcp-session-id']);

    const res = await post(t.url, JSON.parse(t.body), t.headers);
    assert.equal(res.status, 200);
    const answer = await res.json() as { id: number; result: { content: Array<{ text: string }> } };
    assert.equal(answer.id, 1);
    assert.equal(answer.result.content[0].text, 'graph social: 1 row');

    // Without the session the federation refuses: the measured requests really are on the session.
    const bare = await post(t.url, JSON.parse(t.body), { 'mcp-protocol-version': '2025-11-25' });
    assert.equal(bare.status, 400);
    // The unprefixed name is not the federation's.
    const plain = await (await post(t.url, JSON.parse(TOOL_CALL), t.headers)).json() as { error?: { data?: { code?: string } } };
    assert.equal(plain.error?.data?.code, 'GW_ERR_FEDERATION_UNKNOWN_NAME');
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await up.child.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
