/**
 * Unit tests of the graph-rewrite plugin and its name rules, against GatewayExchange objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import graphRewrite from '../../plugins/graph-rewrite/index.ts';
import { TenantNames } from '../../plugins/graph-rewrite/names.ts';
import type { JSONRPCMessage, MessageVerdict, Plugin } from '../../gateway/contract.ts';
import { after, batch, build, call, exchange, json, principal, response, result, rpc, shape } from './fixtures.ts';

async function started(p: Plugin, tenant: string, headers?: Record<string, string>) {
  const x = exchange({ principal: principal(tenant), headers });
  assert.equal(await p.onRequest!(x), undefined);
  return x;
}

function argumentsOf(m: JSONRPCMessage | undefined): Record<string, unknown> {
  return shape<{ params: { arguments: Record<string, unknown> } }>(m).params.arguments;
}

test('TenantNames: prefixing, ownership, whole-name stripping, listings', () => {
  const n = new TenantNames('acme', '_');
  assert.equal(n.toUpstream('social'), 'acme_social');
  assert.equal(n.toClient('acme_social'), 'social');
  assert.equal(n.toClient('acme_'), undefined);
  assert.equal(n.toClient('globex_social'), undefined);
  assert.equal(n.toClient('acmex_social'), undefined);
  assert.equal(
    n.stripName(`Failed on graph 'acme_social': args 'acme_social' (acme_socialite stays)`, 'acme_social', 'social'),
    `Failed on graph 'social': args 'social' (acme_socialite stays)`,
  );
  assert.equal(n.filterListing('acme_a\nglobex_a\nacme_b\r\nbacme_c\nacme_\n', ''), 'a\nb');
  assert.equal(n.filterListing('- acme_a\n- globex_b\nacme_c\n* acme_d', '- '), '- a');
  assert.equal(n.mentionsOwn('Query ran | {"graphName":"acme_g"}'), true);
  assert.equal(n.mentionsOwn('Query ran | {"graphName":"bacme_g","x":"b_acme_g"}'), false);
  assert.equal(n.stripPrefixes('on acme_g and "acme_h"'), 'on g and "h"');
});

test('requests: every default FalkorDB tool gets the tenant prefix; others pass unchanged', async () => {
  const p = await build(graphRewrite, {});
  const x = await started(p, 'acme');
  for (const tool of ['query_graph', 'query_graph_readonly', 'delete_graph', 'get_graph_schema', 'get_node_schema', 'get_relationship_schema']) {
    const msg = call(tool, { graphName: 'social', query: 'RETURN 1' });
    const out = after(msg, await p.onRequestMessage!(msg, x, json));
    assert.deepEqual(argumentsOf(out), { graphName: 'acme_social', query: 'RETURN 1' }, tool);
    assert.equal(argumentsOf(msg).graphName, 'social', 'the original message is not mutated');
  }
  const list = call('list_graphs');
  assert.equal(await p.onRequestMessage!(list, x, json), undefined);
  assert.equal(await p.onRequestMessage!(rpc('tools/list'), x, json), undefined);
  assert.equal(await p.onRequestMessage!(rpc('resources/read', { uri: 'graph://listing' }), x, json), undefined);
});

test('requests: a missing, empty or non-string graph name is refused with invalid params', async () => {
  const p = await build(graphRewrite, {});
  const x = await started(p, 'acme');
  for (const args of [{}, { graphName: '' }, { graphName: '  ' }, { graphName: 42 }, { graphName: ['a'] }, undefined]) {
    const msg = args === undefined ? rpc('tools/call', { name: 'query_graph' }) : call('query_graph', args);
    const v = await p.onRequestMessage!(msg, x, batch) as MessageVerdict;
    assert.equal(v?.kind, 'reject', JSON.stringify(args));
    assert.equal(v.kind === 'reject' && v.code, 'GW_ERR_GRAPH_NAME_INVALID');
    assert.equal(v.kind === 'reject' && v.rpcCode, -32602);
  }
});

test('requests: a tool without a rule that carries a graph argument is refused unless configured to pass', async () => {
  const strict = await build(graphRewrite, {});
  const x = await started(strict, 'acme');
  const v = await strict.onRequestMessage!(call('new_graph_tool', { graphName: 'globex_secrets' }), x, json) as MessageVerdict;
  assert.equal(v.kind === 'reject' && v.code, 'GW_ERR_GRAPH_TOOL_UNKNOWN');
  // A retry carrying an elicitation answer with a graph name is refused all the same.
  const retry = call('new_graph_tool', { graphName: 'globex_secrets' });
  (retry as unknown as { params: Record<string, unknown> }).params.inputResponses = { pick: { action: 'accept', content: { graphName: 'g' } } };
  const w = await strict.onRequestMessage!(retry, x, json) as MessageVerdict;
  assert.equal(w.kind === 'reject' && w.code, 'GW_ERR_GRAPH_TOOL_UNKNOWN');
  assert.equal(await strict.onRequestMessage!(call('echo', { message: 'hi' }), x, json), undefined);
  const lax = await build(graphRewrite, { unlistedToolWithArgument: 'pass' });
  const y = await started(lax, 'acme');
  assert.equal(await lax.onRequestMessage!(call('new_graph_tool', { graphName: 'g' }), y, json), undefined);
});

test('requests: configured tools, argument names and separator serve other upstreams', async () => {
  const p = await build(graphRewrite, {
    separator: '--',
    argument: 'database',
    tools: ['run', { name: 'copy', argument: 'target', header: 'Mcp-Param-Target' }],
    listings: [{ tool: 'databases', linePrefix: '* ' }],
  });
  const x = await started(p, 'acme', { 'mcp-param-target': 'b' });
  assert.equal(argumentsOf(after(call('run', { database: 'a' }), await p.onRequestMessage!(call('run', { database: 'a' }), x, json))).database, 'acme--a');
  const copy = call('copy', { target: 'b', database: 'ignored' });
  const out = argumentsOf(after(copy, await p.onRequestMessage!(copy, x, json)));
  assert.deepEqual(out, { target: 'acme--b', database: 'ignored' });
  assert.equal(x.upstreamHeaders['mcp-param-target'], 'b', 'headers are the core\'s to recompute');
  // The default FalkorDB tools are not rules any more, but they carry no `database`/`target` argument.
  assert.equal(await p.onRequestMessage!(call('query_graph', { graphName: 'x' }), x, json), undefined);
  const listing = call('databases');
  const answer = result(listing, { content: [{ type: 'text', text: '* acme--a\n* globex--a\n* acme--b' }] });
  const filtered = after(answer, await p.onResponseMessage!(answer, x, response(listing)));
  assert.deepEqual((filtered as { result: unknown }).result, { content: [{ type: 'text', text: '* a\n* b' }] });
});

test('requests: mirror headers are left to the core; graph names typed into elicitation answers get the prefix', async () => {
  const p = await build(graphRewrite, { answerFields: ['graphName', 'graph'] });
  const x = await started(p, 'acme', { 'mcp-param-graph': 'social' });
  const retry = call('query_graph', { graphName: 'social' });
  const retryParams = (retry as unknown as { params: Record<string, unknown> }).params;
  retryParams.inputResponses = {
    pick: { action: 'accept', content: { graph: 'launch', note: 'launch' } },
    other: { action: 'decline' },
  };
  retryParams.requestState = 'opaque acme_x';
  const out = after(retry, await p.onRequestMessage!(retry, x, json)) as { params: Record<string, any> };
  assert.equal(x.upstreamHeaders['mcp-param-graph'], 'social', 'the plugin does not touch headers');
  assert.equal(out.params.arguments.graphName, 'acme_social');
  assert.deepEqual(out.params.inputResponses, { pick: { action: 'accept', content: { graph: 'acme_launch', note: 'launch' } }, other: { action: 'decline' } });
  assert.equal(out.params.requestState, 'opaque acme_x');
  // A 2025 client's answer to elicitation/create (a JSON-RPC response) gets the same treatment.
  const answer = { jsonrpc: '2.0', id: 'srv-1', result: { action: 'accept', content: { graph: 'launch' } } } as unknown as JSONRPCMessage;
  const out2 = after(answer, await p.onRequestMessage!(answer, x, json)) as unknown as { result: { content: { graph: string } } };
  assert.equal(out2.result.content.graph, 'acme_launch');
});

test('responses: a multi round-trip requestState passes byte for byte while the rest is unprefixed', async () => {
  const p = await build(graphRewrite, {});
  const x = await started(p, 'acme');
  const req = after(call('query_graph', { graphName: 'social' }), await p.onRequestMessage!(call('query_graph', { graphName: 'social' }), x, json))!;
  const interim = result(req, {
    resultType: 'input_required',
    inputRequests: { pick: { method: 'elicitation/create', params: { message: 'Replace acme_social?' } } },
    requestState: 'state:acme_social',
  });
  const out = after(interim, await p.onResponseMessage!(interim, x, response(req))) as { result: Record<string, any> };
  assert.equal(out.result.requestState, 'state:acme_social');
  assert.equal(out.result.inputRequests.pick.params.message, 'Replace social?');
});

test('refuses without a principal, and a tenant containing the separator', async () => {
  const p = await build(graphRewrite, {});
  const none = await p.onRequest!(exchange());
  assert.equal(none && none.kind === 'respond' && none.code, 'GW_ERR_GRAPH_REWRITE_NO_PRINCIPAL');
  const bad = await p.onRequest!(exchange({ principal: principal('acme_b') }));
  assert.equal(bad && bad.kind === 'respond' && bad.code, 'GW_ERR_TENANT_INVALID');
  assert.equal(bad && bad.kind === 'respond' && bad.status, 403);
  // And message hooks of an exchange whose onRequest refused never forward.
  const v = await p.onRequestMessage!(call('query_graph', { graphName: 'x' }), exchange(), json) as MessageVerdict;
  assert.equal(v.kind, 'reject');
});

test('responses: the prefix is stripped from results, isError texts and JSON-RPC errors', async () => {
  const p = await build(graphRewrite, {});
  const x = await started(p, 'acme');
  const req = after(call('query_graph', { graphName: 'social', query: 'MATCH (n) RETURN n' }), await p.onRequestMessage!(call('query_graph', { graphName: 'social', query: 'MATCH (n) RETURN n' }), x, json))!;
  const isError = result(req, {
    isError: true,
    content: [{ type: 'text', text: `MCP error: Failed to execute query on graph 'acme_social': ERR unknown command 'GRAPH.QUERY', with args beginning with: 'acme_social' 'MATCH (n) RETURN n'` }],
  });
  const out = after(isError, await p.onResponseMessage!(isError, x, response(req, 'sse')));
  const text = shape<{ result: { content: Array<{ text: string }> } }>(out).result.content[0].text;
  assert.equal(text, `MCP error: Failed to execute query on graph 'social': ERR unknown command 'GRAPH.QUERY', with args beginning with: 'social' 'MATCH (n) RETURN n'`);
  assert.equal((out as { id: unknown }).id, (req as { id: unknown }).id);

  const rpcError = { jsonrpc: '2.0', id: (req as { id: number }).id, error: { code: -32603, message: 'graph acme_social is locked', data: { graph: 'acme_social' } } } as JSONRPCMessage;
  const e = after(rpcError, await p.onResponseMessage!(rpcError, x, response(req)));
  assert.deepEqual((e as { error: unknown }).error, { code: -32603, message: 'graph social is locked', data: { graph: 'social' } });

  const ok = result(req, { content: [{ type: 'text', text: '{"graph":"acme_social","rows":[]}' }], structuredContent: { graph: 'acme_social' } });
  const o = after(ok, await p.onResponseMessage!(ok, x, response(req)));
  assert.deepEqual((o as { result: unknown }).result, { content: [{ type: 'text', text: '{"graph":"social","rows":[]}' }], structuredContent: { graph: 'social' } });
});

test('responses: listings keep only the tenant\'s graphs, unprefixed (tool and resource, errors withheld)', async () => {
  const p = await build(graphRewrite, {});
  const x = await started(p, 'acme');
  const upstream = ['acme_social', 'globex_social', 'acme_sales', 'globex_secret', 'acmeish_x', 'plain'];
  const list = call('list_graphs');
  const answer = result(list, { content: [{ type: 'text', text: upstream.join('\n') }, { type: 'image', data: 'x', mimeType: 'image/png' }], structuredContent: { graphs: upstream } });
  const out = after(answer, await p.onResponseMessage!(answer, x, response(list)));
  assert.deepEqual((out as { result: unknown }).result, { content: [{ type: 'text', text: 'social\nsales' }] });

  const read = rpc('resources/read', { uri: 'graph://listing' });
  const res = result(read, { contents: [{ uri: 'graph://listing', text: upstream.map((n) => `- ${n}`).join('\n') }, { uri: 'graph://listing', blob: 'AAAA' }] });
  const r = after(res, await p.onResponseMessage!(res, x, response(read, 'sse')));
  assert.deepEqual((r as { result: unknown }).result, { contents: [{ uri: 'graph://listing', text: '- social\n- sales' }] });

  const failed = result(list, { isError: true, content: [{ type: 'text', text: 'cannot list: globex_secret is corrupt' }] });
  const f = JSON.stringify(after(failed, await p.onResponseMessage!(failed, x, response(list))));
  assert.ok(!f.includes('globex'), f);
  const rpcFailed = { jsonrpc: '2.0', id: (read as { id: number }).id, error: { code: -32603, message: 'globex_secret broke', data: { graph: 'globex_secret' } } } as JSONRPCMessage;
  const rf = JSON.stringify(after(rpcFailed, await p.onResponseMessage!(rpcFailed, x, response(read))));
  assert.ok(!rf.includes('globex') && rf.includes('-32603'), rf);

  // Other resources and other tools' answers pass untouched.
  const other = rpc('resources/read', { uri: 'file:///x' });
  assert.equal(await p.onResponseMessage!(result(other, { contents: [{ uri: 'file:///x', text: 'globex_social' }] }), x, response(other)), undefined);
});

test('responses: log notifications are dropped by default, filtered or passed when configured', async () => {
  const log = (data: string) => ({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', logger: 'falkordb-mcp', data } }) as JSONRPCMessage;
  const mine = log('Query tool executed successfully | {"graphName":"acme_social"}');
  const theirs = log('Query tool executed successfully | {"graphName":"globex_social"}');
  const ctx = { direction: 'response', framing: 'sse' } as const;

  const drop = await build(graphRewrite, {});
  const x = await started(drop, 'acme');
  assert.equal((await drop.onResponseMessage!(mine, x, ctx) as MessageVerdict).kind, 'drop');

  const filter = await build(graphRewrite, { logNotifications: 'filter' });
  const y = await started(filter, 'acme');
  assert.equal((await filter.onResponseMessage!(theirs, y, ctx) as MessageVerdict).kind, 'drop');
  const kept = after(mine, await filter.onResponseMessage!(mine, y, ctx));
  assert.equal(shape<{ params: { data: string } }>(kept).params.data, 'Query tool executed successfully | {"graphName":"social"}');

  const pass = await build(graphRewrite, { logNotifications: 'pass' });
  const z = await started(pass, 'acme');
  assert.equal(await pass.onResponseMessage!(theirs, z, ctx), undefined);
  // Other notifications are never touched.
  assert.equal(await drop.onResponseMessage!({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1, progressToken: 1 } } as JSONRPCMessage, x, ctx), undefined);
});

test('responses the plugin cannot attribute to a request are withheld, not guessed', async () => {
  const p = await build(graphRewrite, {});
  const x = await started(p, 'acme');
  const orphan = { jsonrpc: '2.0', id: 99, result: { content: [{ type: 'text', text: 'globex_social\nacme_social' }] } } as JSONRPCMessage;
  const out = after(orphan, await p.onResponseMessage!(orphan, x, { direction: 'response', framing: 'sse' }));
  assert.ok(!JSON.stringify(out).includes('globex'));
  assert.equal((out as { id: number }).id, 99);
  assert.equal((out as { error: { data: { code: string } } }).error.data.code, 'GW_ERR_GRAPH_RESPONSE_UNMATCHED');
});

test('two tenants, same graph name: no crossing either way', async () => {
  const p = await build(graphRewrite, {});
  const a = await started(p, 'acme');
  const g = await started(p, 'globex');
  const ra = after(call('query_graph', { graphName: 'shared' }), await p.onRequestMessage!(call('query_graph', { graphName: 'shared' }), a, json))!;
  const rg = after(call('query_graph', { graphName: 'shared' }), await p.onRequestMessage!(call('query_graph', { graphName: 'shared' }), g, json))!;
  assert.equal(argumentsOf(ra).graphName, 'acme_shared');
  assert.equal(argumentsOf(rg).graphName, 'globex_shared');
  // Only the name the plugin itself put in the request is stripped: another tenant's name is never
  // disguised as one of acme's (an upstream answering with other data is beyond a rewriter's reach).
  const wrong = result(ra, { content: [{ type: 'text', text: 'data of globex_shared' }] });
  const out = after(wrong, await p.onResponseMessage!(wrong, a, response(ra)));
  assert.equal(shape<{ result: { content: Array<{ text: string }> } }>(out).result.content[0].text, 'data of globex_shared');
});
