/**
 * Unit tests of the tool-policy plugin against GatewayExchange objects.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import toolPolicy, { MAX_TOOL_NAME_LENGTH, ToolPolicy } from '../../plugins/tool-policy.ts';
import { compileWildcard, compileWildcards } from '../../gateway/wildcard.ts';
import type { JSONRPCMessage, MessageVerdict } from '../../gateway/contract.ts';
import { after, batch, build, call, exchange, json, principal, response, result, rpc, shape } from './fixtures.ts';

const TOOLS = ['query_graph', 'query_graph_readonly', 'list_graphs', 'delete_graph', 'get_graph_schema', 'get_node_schema'];

/**
 * What the patterns compiled to before gateway/wildcard.ts, kept as the reference the matcher must
 * agree with: tool-policy's (`*`, `?`) and listener-policy's (`*` only, case-insensitive).
 */
function referenceToolGlob(glob: string): RegExp {
  let src = '';
  for (const ch of glob) {
    if (ch === '*') src += '.*';
    else if (ch === '?') src += '.';
    else src += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${src}$`, 's');
}
function referenceListenerGlob(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}$`, 'i');
}

test('globs: * and ? over the whole name, everything else literal', () => {
  const m = (p: string, t: string) => compileWildcard(p)(t);
  assert.ok(m('query_*', 'query_graph_readonly'));
  assert.ok(!m('query_*', 'xquery_graph'));
  assert.ok(m('get_?ode_schema', 'get_node_schema'));
  assert.ok(!m('get_?ode_schema', 'get_ode_schema'), '? is exactly one character');
  assert.ok(!m('a.b', 'axb'), 'a dot is literal');
  assert.ok(m('*', ''));
  assert.ok(!m('?', ''));
  assert.ok(m('**a**', 'a'));
  assert.ok(m('*_graph', 'query_graph') && !m('*_graph', 'query_graphs'));
  assert.ok(m('a*b*c', 'aXbYbZc') && !m('a*b*c', 'aXbYbZ'));
  assert.ok(m('*', 'line\nbreak'), '* spans newlines, as the s flag did');
  assert.ok(!m('Query_*', 'query_graph'), 'tool names are case-sensitive');
  const list = compileWildcards(['list_graphs', 'get_*']);
  assert.ok(list('list_graphs') && list('get_x') && !list('list_graph'));
  assert.ok(!compileWildcards([])('anything'), 'an empty list matches nothing');
});

test('globs agree with the regular expressions they replace, on every small pattern and name', () => {
  // Exhaustive over short strings of a small alphabet that includes both wildcards and a regex
  // metacharacter; names also contain * and ? (a literal * in a name is still matched by patterns).
  const strings = (alphabet: string, max: number): string[] => {
    const out = [''];
    for (let len = 1, layer = ['']; len <= max; len++) {
      layer = layer.flatMap((s) => [...alphabet].map((c) => s + c));
      out.push(...layer);
    }
    return out;
  };
  const patterns = strings('a*?.', 4);
  const names = strings('ab.*', 4);
  let disagreements = 0;
  for (const p of patterns) {
    const re = referenceToolGlob(p);
    const mine = compileWildcard(p);
    for (const n of names) if (re.test(n) !== mine(n)) disagreements++;
  }
  assert.equal(disagreements, 0);
  // Listener globs: only * is special, ASCII case ignored.
  const hostPatterns = strings('aB*?', 3);
  const hosts = strings('Ab?.', 3);
  for (const p of hostPatterns) {
    const re = referenceListenerGlob(p);
    const mine = compileWildcard(p, { ignoreAsciiCase: true, questionMark: false });
    for (const h of hosts) if (re.test(h) !== mine(h)) disagreements++;
  }
  assert.equal(disagreements, 0);
});

test('pathological globs on 100,000-character names answer correctly (the regexes took minutes)', { timeout: 60_000 }, async () => {
  const long = 'a'.repeat(100_000);
  const cases: Array<[pattern: string, name: string, expected: boolean]> = [
    ['*a*b*c*', long, false],
    ['*a*a*a*b', long, false],
    ['*a*a*a*a*a*a*a*b', long, false],
    ['*a*a*a*b', long + 'b', true],
    ['?*?*?*?*b', long, false],
    ['*aa*aa*aab', long, false],
    ['*', long, true],
    [long, long, true],
    ['*' + 'a'.repeat(50_000) + '*b', long, false],
  ];
  for (const [pattern, name, expected] of cases) {
    assert.equal(compileWildcard(pattern)(name), expected, pattern.slice(0, 40));
    assert.equal(compileWildcard(pattern, { ignoreAsciiCase: true })(name.toUpperCase()), expected, `${pattern.slice(0, 40)} (ignoring case)`);
  }
});

test('a pathological deny pattern cannot stall tool-policy on names up to the length limit', { timeout: 30_000 }, async () => {
  // With the old regexes each check took a few hundred milliseconds (the pattern is quartic in the
  // name's length), these 400 took minutes; now all of them take milliseconds. The test yields between
  // names so that its timeout can fire.
  const policy = new ToolPolicy(toolPolicy.config.parse({ default: { allow: ['*'], deny: ['*a*a*a*b', '*x*y*z*'] } }));
  for (let i = 0; i < 200; i++) {
    const name = 'a'.repeat(MAX_TOOL_NAME_LENGTH - (i % 16));
    assert.equal(policy.permits(undefined, name), true);
    assert.equal(policy.permits(undefined, `${name.slice(1)}b`), false);
    await yieldToEventLoop();
  }
});

test('a tools/call naming a tool longer than 256 characters is refused with GW_ERR_TOOL_NAME_TOO_LONG, unmatched and not echoed', async () => {
  const p = await build(toolPolicy, {});
  const x = exchange({ principal: principal('acme') });
  assert.equal(MAX_TOOL_NAME_LENGTH, 256);
  assert.equal(await p.onRequestMessage!(call('t'.repeat(256)), x, json), undefined, '256 characters pass (allow ["*"])');
  for (const ctx of [json, batch]) {
    const v = await p.onRequestMessage!(call('t'.repeat(257)), x, ctx) as MessageVerdict;
    assert.equal(v.kind, 'reject');
    assert.equal(v.kind === 'reject' && v.code, 'GW_ERR_TOOL_NAME_TOO_LONG');
    assert.equal(v.kind === 'reject' && v.rpcCode, -32602);
    assert.deepEqual(v.kind === 'reject' && v.data, { maxLength: 256 });
    assert.ok(v.kind === 'reject' && !v.message.includes('tttt'), 'the name is not echoed back');
  }
  // Listings leave out tools that could not be called.
  const list = rpc('tools/list');
  const answer = result(list, { tools: [{ name: 'query_graph' }, { name: 'q'.repeat(257) }] });
  const out = shape<{ result: { tools: Array<{ name: string }> } }>(after(answer, await p.onResponseMessage!(answer, x, response(list))));
  assert.deepEqual(out.result.tools.map((t) => t.name), ['query_graph']);
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
  // Sent as a notification (no id), a denied call is refused too: the core then drops it unanswered.
  const { id: _id, ...notification } = call('delete_graph', { graphName: 'g' }) as Record<string, unknown>;
  const v = await p.onRequestMessage!(notification as JSONRPCMessage, x, json) as MessageVerdict;
  assert.equal(v?.kind === 'reject' && v.code, 'GW_ERR_TOOL_DENIED');
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
