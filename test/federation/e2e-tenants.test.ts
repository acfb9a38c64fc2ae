/**
 * One federated endpoint, two tenants: acme sees everything + memory + graphs, globex sees everything +
 * memory only (`graphs: { tenants: [acme] }`). What globex is not shown it cannot call: the call is
 * refused in the gateway and never reaches FalkorDB (the forwarder in front of it records nothing).
 * The stdio memory member runs one process and one file per tenant (`poolKey: '{tenant}'`).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  FALKOR_LIST_GRAPHS, GRAPHS_TOOLS, redisAvailable, startFederation, startMembers, textOf, toolNames, tokenFor,
  type FederationGateway, type Members,
} from './fixtures.ts';
import { closeRawSession, openRawSession, rawRequest } from './fixtures-raw.ts';

const redis = await redisAvailable();

describe('federation per tenant', { skip: redis.ok ? false : redis.reason }, () => {
  let m: Members;
  let fg: FederationGateway;
  before(async () => {
    m = await startMembers({ graphs: true });
    fg = await startFederation(m, {
      prefix: 'always',
      members: { everything: {}, memory: { prefix: 'mem' }, graphs: { tenants: ['acme'] } },
    });
  });
  after(async () => {
    await fg?.close();
    await m?.close();
  });

  /** What reached FalkorDB that only a visible member should ever receive. */
  const graphsWork = () => [...m.graphsWire!.sent('tools/call'), ...m.graphsWire!.sent('resources/read'), ...m.graphsWire!.sent('prompts/get')];

  // Runs first: nothing of acme's has reached FalkorDB yet, so whatever reaches it now came from globex.
  test('globex is not shown graphs, and its call of graphs__list_graphs is an unknown tool that never reaches FalkorDB', async () => {
    const { client } = await fg.v1('globex');
    const names = await toolNames(client);
    assert.ok(names.includes('everything__echo') && names.includes('mem__read_graph'), `${names}`);
    assert.deepEqual(names.filter((n) => n.startsWith('graphs__')), []);
    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    assert.ok(prompts.includes('everything__simple-prompt'), `${prompts}`);
    assert.deepEqual(prompts.filter((n) => n.startsWith('graphs__')), []);
    const uris = (await client.listResources()).resources.map((r) => r.uri);
    assert.ok(!uris.includes('graph://listing'), `${uris}`);

    const s = await openRawSession(fg.url, await tokenFor('globex'));
    try {
      const call = await rawRequest(s, 'tools/call', { name: 'graphs__list_graphs', arguments: {} });
      assert.ok(call.reply, `an answer to id ${call.id} (HTTP ${call.status}: ${call.text})`);
      assert.equal(call.reply.id, call.id);
      assert.equal(call.reply.result, undefined, JSON.stringify(call.reply));
      assert.equal(call.reply.error.code, -32602, JSON.stringify(call.reply.error));
      assert.match(call.reply.error.message, /unknown tool/i);
      assert.match(call.reply.error.message, /graphs__list_graphs/);

      const read = await rawRequest(s, 'resources/read', { uri: 'graph://listing' });
      assert.equal(read.reply?.id, read.id, read.text);
      assert.ok(read.reply?.error, `graph://listing is not readable by globex: ${read.text}`);
      const prompt = await rawRequest(s, 'prompts/get', { name: 'graphs__user_setup', arguments: {} });
      assert.equal(prompt.reply?.id, prompt.id, prompt.text);
      assert.ok(prompt.reply?.error, `graphs__user_setup is not a prompt for globex: ${prompt.text}`);
    } finally {
      await closeRawSession(s);
    }

    const v2 = await fg.v2('globex');
    assert.deepEqual((await toolNames(v2.client)).filter((n) => n.startsWith('graphs__')), []);
    await assert.rejects(v2.client.callTool({ name: 'graphs__list_graphs', arguments: {} }), /unknown tool/i);

    assert.deepEqual(graphsWork(), [], 'nothing globex sent reached FalkorDB');
  });

  test('acme is shown graphs and its calls reach FalkorDB', async () => {
    const { client } = await fg.v1('acme');
    const names = await toolNames(client);
    for (const t of GRAPHS_TOOLS) assert.ok(names.includes(`graphs__${t}`), `graphs__${t} in ${names}`);
    assert.ok(names.includes('everything__echo') && names.includes('mem__read_graph'), `${names}`);
    const r = await client.callTool({ name: 'graphs__list_graphs', arguments: {} });
    assert.equal(r.isError, true);
    assert.match(textOf(r), FALKOR_LIST_GRAPHS);
    assert.deepEqual(m.graphsWire!.sent('tools/call').map((c) => c.params.name), ['list_graphs']);
    // FalkorDB got its own credential from the gateway, never the client's token.
    const auth = m.graphsWire!.requests.map((q) => q.headers.authorization);
    assert.ok(auth.length > 0 && auth.every((a) => a === 'Bearer graphs-key-0123456789abcdef'), `${auth}`);
    const everythingAuth = m.everythingWire.requests.map((q) => q.headers.authorization).filter((a) => a !== undefined);
    assert.deepEqual(everythingAuth, [], 'server-everything has no credential configured and gets none of the client\'s');
    const gatewayHeaders = [...m.everythingWire.requests, ...m.graphsWire!.requests].flatMap((q) => Object.keys(q.headers)).filter((h) => h.startsWith('x-mcp-gateway-'));
    assert.deepEqual(gatewayHeaders, []);
  });

  test('each tenant\'s memory is its own: entities acme creates are not in globex\'s read_graph', async () => {
    const acme = (await fg.v1('acme')).client;
    const globex = (await fg.v1('globex')).client;
    const create = (c: typeof acme, name: string) =>
      c.callTool({ name: 'mem__create_entities', arguments: { entities: [{ name, entityType: 'plan', observations: [`by ${name}`] }] } });
    const entities = async (c: typeof acme) =>
      JSON.parse(textOf(await c.callTool({ name: 'mem__read_graph', arguments: {} }))).entities.map((e: { name: string }) => e.name).sort();

    assert.notEqual((await create(acme, 'acme-secret-plan')).isError, true);
    assert.notEqual((await create(globex, 'globex-roadmap')).isError, true);
    assert.deepEqual(await entities(acme), ['acme-secret-plan']);
    assert.deepEqual(await entities(globex), ['globex-roadmap']);
    const search = JSON.parse(textOf(await globex.callTool({ name: 'mem__search_nodes', arguments: { query: 'acme' } })));
    assert.deepEqual(search.entities, []);

    // A second acme session (a 2026 client this time) reaches the same process and data.
    const acme2 = await fg.v2('acme');
    const again = JSON.parse(textOf(await acme2.client.callTool({ name: 'mem__read_graph', arguments: {} })));
    assert.deepEqual(again.entities.map((e: { name: string }) => e.name), ['acme-secret-plan']);

    const acmeFile = await readFile(path.join(fg.tg.dir, 'data/memory-acme.jsonl'), 'utf8');
    const globexFile = await readFile(path.join(fg.tg.dir, 'data/memory-globex.jsonl'), 'utf8');
    assert.match(acmeFile, /acme-secret-plan/);
    assert.doesNotMatch(acmeFile, /globex/);
    assert.match(globexFile, /globex-roadmap/);
    assert.doesNotMatch(globexFile, /acme/);
  });
});

describe('federation members limited by tenant pattern and by scope (default naming)', { skip: redis.ok ? false : redis.reason }, () => {
  let m: Members;
  let fg: FederationGateway;
  before(async () => {
    m = await startMembers({ graphs: true });
    fg = await startFederation(m, {
      members: { everything: {}, memory: { tenants: ['ac*'] }, graphs: { scopes: ['graphs:use'] } },
    });
  });
  after(async () => {
    await fg?.close();
    await m?.close();
  });

  test('a member is shown only to matching tenants and to callers holding one of its scopes', async () => {
    const plain = await toolNames((await fg.v1('acme')).client);
    assert.ok(plain.includes('echo') && plain.includes('read_graph'), `acme matches "ac*": ${plain}`);
    assert.ok(!plain.includes('list_graphs'), `no graphs without the scope: ${plain}`);

    const scoped = await toolNames((await fg.v1('acme', { scope: 'openid graphs:use' })).client);
    assert.ok(scoped.includes('list_graphs') && scoped.includes('read_graph'), `${scoped}`);

    const globex = await fg.v1('globex', { scope: 'graphs:use' });
    const names = await toolNames(globex.client);
    assert.ok(names.includes('echo') && names.includes('list_graphs'), `${names}`);
    assert.ok(!names.includes('read_graph'), `globex does not match "ac*": ${names}`);
    await assert.rejects(globex.client.callTool({ name: 'read_graph', arguments: {} }), /unknown tool/i);
  });

  test('a hidden member is not reachable by its prefixed name either', async () => {
    const { client } = await fg.v1('acme');
    for (const name of ['list_graphs', 'graphs__list_graphs']) {
      await assert.rejects(client.callTool({ name, arguments: {} }), /unknown tool/i, name);
    }
    const globex = await fg.v1('globex');
    await assert.rejects(globex.client.callTool({ name: 'memory__read_graph', arguments: {} }), /unknown tool/i);
    assert.deepEqual(m.graphsWire!.sent('tools/call'), [], 'nothing reached FalkorDB');
  });
});
