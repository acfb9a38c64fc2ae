/**
 * Both MCP eras through one federation: a 2025 client (SDK v1) holds one session; a 2026-07-28 client
 * (SDK v2, pinned) works statelessly through the gateway's translator. Both see and call the tools of
 * every member; the tenant's stdio memory is the same whichever era writes or reads it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  EVERYTHING_TOOLS, FALKOR_LIST_GRAPHS, GRAPHS_TOOLS, MEMORY_TOOLS,
  redisAvailable, startFederation, startMembers, textOf, toolNames, tokenFor,
  type FederationGateway, type Members,
} from './fixtures.ts';
import { raw2026 } from './fixtures-raw.ts';
import { waitFor } from '../helpers/wait.ts';

const redis = await redisAvailable();

const expected = [
  ...EVERYTHING_TOOLS.map((t) => `everything__${t}`),
  ...MEMORY_TOOLS.map((t) => `mem__${t}`),
  ...GRAPHS_TOOLS.map((t) => `graphs__${t}`),
];

describe('federation across eras', { skip: redis.ok ? false : redis.reason }, () => {
  let m: Members;
  let fg: FederationGateway;
  before(async () => {
    m = await startMembers({ graphs: true });
    fg = await startFederation(m, { prefix: 'always', members: { everything: {}, memory: { prefix: 'mem' }, graphs: {} } });
  });
  after(async () => {
    await fg?.close();
    await m?.close();
  });

  test('a 2025 client gets one session and lists and calls every member through it', async () => {
    const { client } = await fg.v1('acme');
    const transport = client.transport as unknown as { sessionId?: string };
    const session = transport.sessionId;
    assert.equal(typeof session, 'string', 'the gateway answered initialize with an Mcp-Session-Id');
    assert.ok(session!.length > 0);

    const names = await toolNames(client);
    for (const n of expected) assert.ok(names.includes(n), `${n} in ${names}`);

    assert.equal(textOf(await client.callTool({ name: 'everything__echo', arguments: { message: 'v1' } })), 'Echo: v1');
    assert.equal(textOf(await client.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 40 } })), 'The sum of 2 and 40 is 42.');
    const graph = await client.callTool({ name: 'mem__read_graph', arguments: {} });
    assert.ok(Array.isArray(JSON.parse(textOf(graph)).entities), textOf(graph));
    assert.match(textOf(await client.callTool({ name: 'graphs__list_graphs', arguments: {} })), FALKOR_LIST_GRAPHS);

    assert.equal(transport.sessionId, session, 'one session throughout');

    // DELETE ends the session at every member that has one (docs/federation.md, Sessions).
    const memberSessions = new Set(m.everythingWire.requests.filter((r) => r.method === 'POST').map((r) => r.headers['mcp-session-id']).filter(Boolean));
    const graphSessions = new Set(m.graphsWire!.requests.filter((r) => r.method === 'POST').map((r) => r.headers['mcp-session-id']).filter(Boolean));
    await (client.transport as unknown as { terminateSession(): Promise<void> }).terminateSession();
    const deleted = (w: Members['everythingWire'], ids: Set<unknown>) => w.requests.some((r) => r.method === 'DELETE' && ids.has(r.headers['mcp-session-id']));
    await waitFor(() => deleted(m.everythingWire, memberSessions) && deleted(m.graphsWire!, graphSessions), 'DELETE of the member sessions at server-everything and FalkorDB', 60_000);
  });

  test('a 2026-07-28 client lists the same tools and calls every member, without a session', async () => {
    const v1 = await fg.v1('acme');
    const v2 = await fg.v2('acme');
    assert.equal(v2.era, 'modern');
    const names = await toolNames(v2.client);
    for (const n of expected) assert.ok(names.includes(n), `${n} in ${names}`);
    assert.deepEqual(names, await toolNames(v1.client), 'both eras see one catalogue');

    assert.equal(textOf(await v2.client.callTool({ name: 'everything__echo', arguments: { message: 'v2' } })), 'Echo: v2');
    const graph = await v2.client.callTool({ name: 'mem__read_graph', arguments: {} });
    assert.ok(Array.isArray(JSON.parse(textOf(graph)).entities), textOf(graph));
    const graphs = await v2.client.callTool({ name: 'graphs__list_graphs', arguments: {} });
    assert.equal(graphs.isError, true);
    assert.match(textOf(graphs), FALKOR_LIST_GRAPHS);
    const doc = await v2.client.readResource({ uri: 'demo://resource/dynamic/text/3' });
    assert.match((doc.contents[0] as { text: string }).text, /^Resource 3: This is a plaintext resource/);
  });

  test('a 2026-07-28 client answers a member\'s elicitation as a multi round-trip call', async () => {
    const asked: string[] = [];
    const v2 = await fg.v2('acme', {
      onElicit: (p) => {
        asked.push(p.message);
        return { action: 'accept', content: { name: 'Modern Mo', check: true } };
      },
    });
    const name = 'everything__trigger-elicitation-request';
    assert.ok((await toolNames(v2.client)).includes(name), 'listed for a client declaring elicitation');
    const r = await v2.client.callTool({ name, arguments: {} });
    assert.deepEqual(asked, ['Please provide inputs for the following fields:']);
    assert.match(textOf(r), /- Name: Modern Mo/);
  });

  test('raw 2026 requests are answered without an Mcp-Session-Id', async () => {
    const token = await tokenFor('acme');
    const list = await raw2026(fg.url, token, 'tools/list');
    assert.equal(list.status, 200, list.text);
    assert.equal(list.headers.get('mcp-session-id'), null);
    assert.equal(list.reply?.id, list.id);
    const listed = (list.reply?.result?.tools ?? []).map((t: { name: string }) => t.name);
    assert.ok(listed.includes('everything__echo') && listed.includes('graphs__list_graphs'), `${listed}`);

    const call = await raw2026(fg.url, token, 'tools/call', { name: 'everything__echo', arguments: { message: 'stateless' } });
    assert.equal(call.status, 200, call.text);
    assert.equal(call.headers.get('mcp-session-id'), null);
    assert.equal(call.reply?.id, call.id);
    assert.equal(textOf(call.reply?.result), 'Echo: stateless');
  });

  test('one tenant\'s memory is the same whichever era writes or reads it', async () => {
    const v1 = await fg.v1('acme');
    const v2 = await fg.v2('acme');
    const created = await v1.client.callTool({
      name: 'mem__create_entities',
      arguments: { entities: [{ name: 'era-bridge', entityType: 'note', observations: ['written by a 2025 client'] }] },
    });
    assert.notEqual(created.isError, true, textOf(created));
    const read = JSON.parse(textOf(await v2.client.callTool({ name: 'mem__read_graph', arguments: {} })));
    const entity = read.entities.find((e: { name: string }) => e.name === 'era-bridge');
    assert.deepEqual(entity?.observations, ['written by a 2025 client'], JSON.stringify(read));
  });
});
