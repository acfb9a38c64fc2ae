/**
 * Unit tests of the tool-policy plugin against GatewayExchange objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import toolPolicy, { ToolPolicy, globToRegExp } from '../../plugins/tool-policy.ts';
import type { JSONRPCMessage, MessageVerdict } from '../../gateway/contract.ts';
import { after, batch, build, call, exchange, json, principal, response, result, rpc, shape } from './fixtures.ts';

const TOOLS = ['query_graph', 'query_graph_readonly', 'list_graphs', 'delete_graph', 'get_graph_schema', 'get_node_schema'];

test('globs: * and ? over the whole name, everything else literal', () => {
  assert.ok(globToRegExp('query_*').test('query_graph_readonly'));
  assert.ok(!globToRegExp('query_*').test('xquery_graph'));
  assert.ok(globToRegExp('get_?ode_schema').test('get_node_schema'));
  assert.ok(!globToRegExp('a.b').test('axb'), 'a dot is literal');
  assert.ok(globToRegExp('*').test(''));
});

test('decisions: tenant rule replaces default; scope deny beats scope grant beats base rule', () => {
  const policy = new ToolPolicy(toolPolicy.config.parse({
    default: { allow: ['*'], deny: ['delete_graph'] },
    tenants: { readonly: { allow: ['query_graph_readonly', 'list_graphs', 'get_*'] } },
    scopes: { 'graph:admin': { allow: ['delete_graph'] }, 'graph:read': { deny: ['query_graph', 'delete_graph'] } },
  }));
  const allowed = (p: Parameters<ToolPolicy['permits']>[0]) => TOOLS.filter((t) => policy.permits(p, t));
  assert.deepEqual(allowed(principal('acme')), TOOLS.filter((t) => t !== 'delete_graph'));
  assert.deepEqual(allowed(principal('acme', { scopes: ['graph:admin'] })), TOOLS);
  assert.deepEqual(allowed(principal('acme', { scopes: ['graph:admin', 'graph:read'] })), TOOLS.filter((t) => t !== 'delete_graph' && t !== 'query_graph'));
  assert.deepEqual(allowed(principal('readonly')), ['query_graph_readonly', 'list_graphs', 'get_graph_schema', 'get_node_schema']);
  assert.deepEqual(allowed(undefined), TOOLS.filter((t) => t !== 'delete_graph'), 'no principal: default rule');
});

test('a denied tools/call is refused with GW_ERR_TOOL_DENIED, alone or in a batch; allowed calls pass', async () => {
  const p = await build(toolPolicy, { tenants: { acme: { deny: ['delete_*'] } } });
  const x = exchange({ principal: principal('acme') });
  for (const ctx of [json, batch]) {
    const v = await p.onRequestMessage!(call('delete_graph', { graphName: 'g', confirmDelete: true }), x, ctx) as MessageVerdict;
    assert.equal(v.kind, 'reject');
    assert.equal(v.kind === 'reject' && v.code, 'GW_ERR_TOOL_DENIED');
    assert.equal(v.kind === 'reject' && v.rpcCode, -32602);
    assert.deepEqual(v.kind === 'reject' && v.data, { tool: 'delete_graph' });
  }
  assert.equal(await p.onRequestMessage!(call('query_graph', { graphName: 'g' }), x, json), undefined);
  const nameless = await p.onRequestMessage!(rpc('tools/call', { arguments: {} }), x, json) as MessageVerdict;
  assert.equal(nameless.kind === 'reject' && nameless.code, 'GW_ERR_TOOL_DENIED');
  // Another tenant keeps the default (everything).
  assert.equal(await p.onRequestMessage!(call('delete_graph', {}), exchange({ principal: principal('globex') }), json), undefined);
});

test('tools/list answers show only permitted tools (JSON and SSE alike)', async () => {
  const p = await build(toolPolicy, { default: { allow: ['query_*', 'list_graphs'] } });
  const x = exchange({ principal: principal('acme') });
  const list = rpc('tools/list');
  const answer = result(list, { tools: TOOLS.map((name) => ({ name, inputSchema: { type: 'object' } })), nextCursor: 'c2' });
  for (const framing of ['json', 'sse'] as const) {
    const out = shape<{ result: { tools: Array<{ name: string }>; nextCursor: string } }>(after(answer, await p.onResponseMessage!(answer, x, response(list, framing))));
    assert.deepEqual(out.result.tools.map((t) => t.name), ['query_graph', 'query_graph_readonly', 'list_graphs']);
    assert.equal(out.result.nextCursor, 'c2');
  }
  // A list answer whose request the core lost is still filtered (its shape gives it away).
  const orphan = shape<{ result: { tools: unknown[] } }>(after(answer, await p.onResponseMessage!(answer, x, { direction: 'response', framing: 'sse' })));
  assert.equal(orphan.result.tools.length, 3);
  // Other answers are untouched.
  const call1 = call('query_graph');
  assert.equal(await p.onResponseMessage!(result(call1, { tools: [{ name: 'delete_graph' }] }), x, response(call1)), undefined);
  const nothingRemoved = result(list, { tools: [{ name: 'query_graph' }] }) as JSONRPCMessage;
  assert.equal(await p.onResponseMessage!(nothingRemoved, x, response(list)), undefined);
});

test('config is strict', () => {
  assert.equal(toolPolicy.config.safeParse({ tenants: { acme: { allow: ['x'], allows: ['y'] } } }).success, false);
  assert.equal(toolPolicy.config.safeParse({ scopes: { s: { allow: [''] } } }).success, false);
});
