/**
 * The federation against scripted members that fail on purpose: names and collisions, routing, a member
 * that hangs, refuses the gateway or forgets its sessions, tenants' member sets, and what members see.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { authPlugins, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { startScriptedMember, type ScriptedMember } from './scripted-member.ts';

interface Answer { status: number; headers: Headers; body: any }

/** A bare 2025-era client: one POST, its JSON answer. */
async function post(url: string, token: string, session: string | undefined, message: unknown): Promise<Answer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25', ...(session ? { 'mcp-session-id': session } : {}),
    },
    body: typeof message === 'string' ? message : JSON.stringify(message),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

async function initialize(url: string, token: string): Promise<string> {
  const a = await post(url, token, undefined, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  assert.equal(a.status, 200, JSON.stringify(a.body));
  return a.headers.get('mcp-session-id')!;
}

const names = (a: Answer): string[] => a.body.result.tools.map((t: { name: string }) => t.name);

async function gatewayFor(yamlMembers: string, upstreams: string, opts: { prefix: string; listTimeout?: string }): Promise<TestGateway> {
  return startTestGateway(`
listeners: [{ name: main, host: 127.0.0.1, port: 0 }]
upstreams:
${upstreams}
  fed:
    federation:
      prefix: ${opts.prefix}
      listTimeout: ${opts.listTimeout ?? '20s'}
      members:
${yamlMembers}
routes:
  - { name: fed, listener: main, path: /mcp, upstream: fed, plugins: ${authPlugins()} }
`, { env: GATEWAY_ENV });
}

/**
 * Scripted members `a` (tool `alpha`) and, when asked, `b` (tool `beta`) behind a federation, a
 * gateway in front, everything stopped with the test. `fields` adds YAML to a member's upstream entry
 * (`headers`, `timeouts`), `options` to its federation member entry (`tenants`).
 */
async function federate(t: TestContext, opts: {
  members: Array<'a' | 'b'>; prefix: string; listTimeout?: string;
  fields?: Partial<Record<'a' | 'b', string>>; options?: Partial<Record<'a' | 'b', string>>;
}) {
  const tools = { a: ['alpha'], b: ['beta'] };
  const started = await Promise.all(opts.members.map((m) => startScriptedMember(m, tools[m])));
  t.after(() => Promise.all(started.map((m) => m.close())));
  const upstreams = opts.members.map((m, i) => `  ${m}: { url: ${started[i].url}${opts.fields?.[m] ? `, ${opts.fields[m]}` : ''} }`).join('\n');
  const entries = opts.members.map((m) => `        ${m}: ${opts.options?.[m] ?? '{}'}`).join('\n');
  const gw = await gatewayFor(entries, upstreams, { prefix: opts.prefix, listTimeout: opts.listTimeout });
  t.after(() => gw.close());
  const [a, b] = started;
  return { a, b, gw, url: `${gw.url()}/mcp`, token: await tokenFor('acme') };
}

describe('federation names and routing', () => {
  let a: ScriptedMember;
  let b: ScriptedMember;
  before(async () => {
    a = await startScriptedMember('a', ['search', 'alpha']);
    b = await startScriptedMember('b', ['search', 'beta']);
  });
  after(async () => { await a.close(); await b.close(); });

  const upstreams = () => `  a: { url: ${a.url}, headers: { authorization: "Bearer member-a-key" } }\n  b: { url: ${b.url} }`;

  test('on-collision prefixes only the shared names, and each name reaches its own member', async (t) => {
    const gw = await gatewayFor('        a: {}\n        b: { prefix: bee }', upstreams(), { prefix: 'on-collision' });
    t.after(() => gw.close());
    const url = `${gw.url()}/mcp`;
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    const list = await post(url, token, session, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.deepEqual(names(list).sort(), ['a__search', 'alpha', 'bee__search', 'beta']);
    const call = await post(url, token, session, { jsonrpc: '2.0', id: 'c1', method: 'tools/call', params: { name: 'bee__search', arguments: { q: 'x' } } });
    assert.equal(call.body.id, 'c1');
    assert.equal(call.body.result.content[0].text, 'b ran search {"q":"x"}');
    const plain = await post(url, token, session, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'alpha' } });
    assert.equal(plain.body.result.content[0].text, 'a ran alpha {}');
    const unknown = await post(url, token, session, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'search' } });
    assert.equal(unknown.body.id, 3);
    assert.equal(unknown.body.error.code, -32602);
    assert.equal(unknown.body.error.data.code, 'GW_ERR_FEDERATION_UNKNOWN_NAME');
  });

  test('what the federation refuses as a server has a stable code', async (t) => {
    const gw = await gatewayFor('        a: {}', upstreams(), { prefix: 'always' });
    t.after(() => gw.close());
    const url = `${gw.url()}/mcp`;
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    const cursor = await post(url, token, session, { jsonrpc: '2.0', id: 1, method: 'tools/list', params: { cursor: 'x' } });
    assert.deepEqual([cursor.body.id, cursor.body.error.code, cursor.body.error.data.code], [1, -32602, 'GW_ERR_FEDERATION_INVALID_PARAMS']);
    const odd = await post(url, token, session, { jsonrpc: '2.0', id: 2, method: 'tasks/list' });
    assert.deepEqual([odd.body.id, odd.body.error.code, odd.body.error.data.code], [2, -32601, 'GW_ERR_FEDERATION_METHOD_NOT_FOUND']);
    const none = await post(url, token, undefined, { jsonrpc: '2.0', id: 3, method: 'tools/list' });
    assert.deepEqual([none.status, none.body.error.data.code], [400, 'GW_ERR_INVALID_REQUEST']);
  });

  test('never refuses a listing with a collision, naming the name and both members', async (t) => {
    const gw = await gatewayFor('        a: {}\n        b: {}', upstreams(), { prefix: 'never' });
    t.after(() => gw.close());
    const url = `${gw.url()}/mcp`;
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    const list = await post(url, token, session, { jsonrpc: '2.0', id: 7, method: 'tools/list' });
    assert.equal(list.body.id, 7);
    assert.equal(list.body.error.data.code, 'GW_ERR_FEDERATION_NAME_COLLISION');
    assert.match(list.body.error.message, /"search".*"a".*"b"/);
  });

  test('members get their own credential, never the client\'s token', async (t) => {
    const gw = await gatewayFor('        a: {}\n        b: {}', upstreams(), { prefix: 'always' });
    t.after(() => gw.close());
    const url = `${gw.url()}/mcp`;
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    await post(url, token, session, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a__alpha' } });
    const seen = a.upstream.requests.map((r) => r.headers.authorization);
    assert.ok(seen.length > 0);
    assert.ok(seen.every((h) => h === 'Bearer member-a-key'), JSON.stringify(seen));
    assert.ok(b.upstream.requests.every((r) => r.headers.authorization === undefined));
    assert.ok(!gw.logText().includes(token));
  });

  test('batches of requests are refused; a bad session is 404; no session is 400', async (t) => {
    const gw = await gatewayFor('        a: {}', upstreams(), { prefix: 'always' });
    t.after(() => gw.close());
    const url = `${gw.url()}/mcp`;
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    const batch = await post(url, token, session, [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }, { jsonrpc: '2.0', id: 2, method: 'ping' }]);
    assert.equal(batch.status, 400);
    assert.equal(batch.body.error.data.code, 'GW_ERR_INVALID_REQUEST');
    const none = await post(url, token, undefined, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(none.status, 400);
    const other = await post(url, await tokenFor('globex'), session, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.equal(other.status, 404);
  });
});

describe('federation failures', () => {
  test('a member that hangs is left out after listTimeout; the others are served', async (t) => {
    const { a, b, gw, url } = await federate(t, { members: ['a', 'b'], prefix: 'always', listTimeout: '3s' });
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    b.fail('hang-lists');
    const list = await post(url, token, session, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.deepEqual(names(list), ['a__alpha']);
    const warned = gw.logs().find((l) => l.member === 'b' && l.level === 40);
    assert.ok(warned, 'a warning names the failing member');
    assert.match(String(warned.reason), /timed out after 3000 ms/);
    b.fail('none');
    const again = await post(url, token, session, { jsonrpc: '2.0', id: 2, method: 'tools/list' });
    assert.deepEqual(names(again), ['a__alpha', 'b__beta']);
  });

  test('a member that never opens its session holds up neither initialize nor listings', async (t) => {
    const { a, b, gw, url } = await federate(t, { members: ['a', 'b'], prefix: 'always', listTimeout: '3s' });
    const token = await tokenFor('acme');
    b.fail('hang-initialize');
    const session = await initialize(url, token);
    // The client's GET stream starts opening b again (and waits on it); a listing meanwhile waits on
    // that same opening only as long as its own deadline.
    const stream = new AbortController();
    t.after(() => stream.abort());
    void fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' }, signal: stream.signal }).catch(() => {});
    await b.upstream.waitFor(() => b.received('initialize').length >= 2, 20_000, 'the stream asks b for a session');
    const list = await post(url, token, session, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    assert.deepEqual(names(list), ['a__alpha']);
  });

  test('a member refusing the gateway\'s credential: a clear error with the call\'s id, others unaffected', async (t) => {
    const { a, b, gw, url } = await federate(t, { members: ['a', 'b'], prefix: 'always', fields: { b: 'headers: { authorization: "Bearer wrong" }' } });
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    b.fail('status-401');
    const call = await post(url, token, session, { jsonrpc: '2.0', id: 'x', method: 'tools/call', params: { name: 'b__beta' } });
    assert.equal(call.body.id, 'x');
    assert.equal(call.body.error.data.code, 'GW_ERR_UPSTREAM_AUTH');
    const ok = await post(url, token, session, { jsonrpc: '2.0', id: 'y', method: 'tools/call', params: { name: 'a__alpha' } });
    assert.equal(ok.body.result.content[0].text, 'a ran alpha {}');
  });

  test('a member\'s own timeouts hold behind the federation: a call it never answers is GW_ERR_UPSTREAM_TIMEOUT', async (t) => {
    const { a, gw, url } = await federate(t, { members: ['a'], prefix: 'always', fields: { a: 'timeouts: { firstByte: 3s }' } });
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    a.fail('hang-calls');
    const call = await post(url, token, session, { jsonrpc: '2.0', id: 'slow', method: 'tools/call', params: { name: 'a__alpha' } });
    assert.equal(call.body.id, 'slow');
    assert.equal(call.body.error.data.code, 'GW_ERR_UPSTREAM_TIMEOUT');
    assert.match(call.body.error.message, /timed out after 3000 ms waiting for its answer \(timeouts.firstByte\)/);
    a.fail('none');
    const again = await post(url, token, session, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'a__alpha' } });
    assert.equal(again.body.result.content[0].text, 'a ran alpha {}');
  });

  test('a member that forgot the session gets a new one, and the call runs once', async (t) => {
    const { a, gw, url } = await federate(t, { members: ['a'], prefix: 'always' });
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    assert.equal(a.received('initialize').length, 1);
    a.fail('forget-sessions');
    const call = await post(url, token, session, { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'a__alpha' } });
    assert.equal(call.body.result.content[0].text, 'a ran alpha {}');
    assert.equal(a.received('initialize').length, 2);
    assert.equal(a.received('tools/call').length, 2, 'the refused attempt and the one that ran');
    assert.equal(a.upstream.requests.filter((r) => (r.json as any)?.method === 'tools/call' && r.answered && r.headers['mcp-session-id'] === 'a-session-2').length, 1);
  });

  test('a session outlives a reload: the new federation reads its member sessions from the id', async (t) => {
    const { a, gw, url } = await federate(t, { members: ['a'], prefix: 'always' });
    const token = await tokenFor('acme');
    const session = await initialize(url, token);
    assert.deepEqual(await gw.gw.reload(), { ok: true });
    const call = await post(url, token, session, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a__alpha' } });
    assert.equal(call.body.result.content[0].text, 'a ran alpha {}');
    assert.equal(a.received('initialize').length, 1, 'no new member session was needed');
    assert.deepEqual([...new Set(a.received('tools/call').map((r) => r.headers['mcp-session-id']))], ['a-session-1']);
  });

  test('any replica serves a session: another gateway with the same session key uses the sealed member sessions', async (t) => {
    const a = await startScriptedMember('a', ['alpha']);
    t.after(() => a.close());
    const key = Buffer.alloc(32, 7).toString('base64');
    const start = () => startTestGateway(`
listeners: [{ name: main, host: 127.0.0.1, port: 0 }]
upstreams:
  a: { url: ${a.url} }
  fed: { federation: { prefix: always, members: { a: {} } } }
routes:
  - { name: fed, listener: main, path: /mcp, upstream: fed, plugins: ${authPlugins()} }
sessions: { key: "${key}" }
`, { env: GATEWAY_ENV });
    const one = await start();
    t.after(() => one.close());
    const two = await start();
    t.after(() => two.close());
    const token = await tokenFor('acme');
    const session = await initialize(`${one.url()}/mcp`, token);
    const call = await post(`${two.url()}/mcp`, token, session, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a__alpha' } });
    assert.equal(call.body.result.content[0].text, 'a ran alpha {}');
    assert.equal(a.received('initialize').length, 1, 'the second replica opened nothing');
    const stranger = await post(`${two.url()}/mcp`, await tokenFor('globex'), session, { jsonrpc: '2.0', id: 2, method: 'tools/list' });
    assert.equal(stranger.status, 404, 'and the id is still bound to its owner there');
  });

  test('a tenant outside a member\'s tenants neither sees nor reaches it', async (t) => {
    const { a, b, gw, url } = await federate(t, { members: ['a', 'b'], prefix: 'always', options: { b: '{ tenants: [acme] }' } });
    const acme = await tokenFor('acme');
    const globex = await tokenFor('globex');
    const s1 = await initialize(url, acme);
    assert.deepEqual(names(await post(url, acme, s1, { jsonrpc: '2.0', id: 1, method: 'tools/list' })), ['a__alpha', 'b__beta']);
    const before = b.upstream.requests.length;
    const s2 = await initialize(url, globex);
    assert.deepEqual(names(await post(url, globex, s2, { jsonrpc: '2.0', id: 1, method: 'tools/list' })), ['a__alpha']);
    const call = await post(url, globex, s2, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'b__beta' } });
    assert.equal(call.body.error.code, -32602);
    assert.equal(b.upstream.requests.length, before, 'nothing of globex reached b');
  });
});
