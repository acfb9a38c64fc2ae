/**
 * Federation names end to end: what a client is shown with `prefix: always`, `on-collision` (the
 * default) and `never`, and that calls, prompts and resource reads reach the member that offered them
 * under the member's own names (the recording forwarders show what each member received).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { packageBin } from '../helpers/upstreams.ts';
import {
  EVERYTHING_TOOLS, FALKOR_LIST_GRAPHS, GRAPHS_TOOLS, MEMORY_TOOLS,
  redisAvailable, startFederation, startMembers, textOf, toolNames, tokenFor,
  type FederationGateway, type Members,
} from './fixtures.ts';
import { closeRawSession, openRawSession, rawRequest } from './fixtures-raw.ts';

const redis = await redisAvailable();
const EVERYTHING_DOCS = path.join(path.dirname(packageBin('@modelcontextprotocol/server-everything')), 'docs');

describe('federation names', { skip: redis.ok ? false : redis.reason }, () => {
  let m: Members;
  before(async () => { m = await startMembers({ graphs: true }); });
  after(async () => { await m?.close(); });

  describe('prefix: always', () => {
    let fg: FederationGateway;
    before(async () => {
      fg = await startFederation(m, { prefix: 'always', members: { everything: {}, memory: { prefix: 'mem' }, graphs: {} } });
    });
    after(async () => { await fg?.close(); });

    test('every tool is shown as <prefix>__<its own name>, with its description and schema', async () => {
      const { client } = await fg.v1('acme');
      const names = await toolNames(client);
      for (const t of EVERYTHING_TOOLS) assert.ok(names.includes(`everything__${t}`), `everything__${t} in ${names}`);
      for (const t of MEMORY_TOOLS) assert.ok(names.includes(`mem__${t}`), `mem__${t} in ${names}`);
      for (const t of GRAPHS_TOOLS) assert.ok(names.includes(`graphs__${t}`), `graphs__${t} in ${names}`);
      for (const n of names) assert.match(n, /^(everything|mem|graphs)__[^_]/, `${n} carries a member prefix`);
      assert.ok(!names.some((n) => n.startsWith('memory__')), 'memory\'s configured prefix "mem" replaces its name');

      const echo = (await client.listTools()).tools.find((t) => t.name === 'everything__echo');
      assert.equal(echo?.description, 'Echoes back the input string');
      assert.deepEqual(Object.keys((echo?.inputSchema as { properties?: object }).properties ?? {}), ['message']);
    });

    test('calls are routed by the exposed name, and each member receives its own name', async () => {
      const { client } = await fg.v1('acme');
      const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'routed by prefix' } });
      assert.deepEqual(echo.content, [{ type: 'text', text: 'Echo: routed by prefix' }]);
      assert.notEqual(echo.isError, true);
      // Nothing in the answer, nor in the server the client met, says which member answered.
      assert.ok(!/everything|"mem"|graphs/.test(JSON.stringify(echo)), JSON.stringify(echo));
      const server = client.getServerVersion()?.name;
      assert.ok(server && !['mcp-servers/everything', 'memory-server'].includes(server) && !/falkor/i.test(server), `serverInfo.name ${server}`);

      const graph = await client.callTool({ name: 'mem__read_graph', arguments: {} });
      assert.notEqual(graph.isError, true, textOf(graph));
      assert.ok(Array.isArray(JSON.parse(textOf(graph)).entities), textOf(graph));

      const graphs = await client.callTool({ name: 'graphs__list_graphs', arguments: {} });
      assert.equal(graphs.isError, true);
      assert.match(textOf(graphs), FALKOR_LIST_GRAPHS, 'FalkorDB answered (plain Redis has no GRAPH.LIST)');

      const toEverything = m.everythingWire.sent('tools/call').map((c) => c.params.name);
      const toGraphs = m.graphsWire!.sent('tools/call').map((c) => c.params.name);
      assert.ok(toEverything.includes('echo'), `server-everything received ${toEverything}`);
      assert.ok(!toEverything.some((n: string) => n.includes('__')), `no prefixed name reached server-everything: ${toEverything}`);
      assert.deepEqual(toGraphs, ['list_graphs']);
    });

    test('prompts and resource templates are prefixed; resources keep their URIs and are read by URI', async () => {
      const { client } = await fg.v1('acme');
      const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
      assert.ok(prompts.includes('everything__simple-prompt'), `${prompts}`);
      assert.ok(prompts.includes('graphs__user_setup'), `${prompts}`);
      for (const p of prompts) assert.match(p, /^(everything|mem|graphs)__/);
      const prompt = await client.getPrompt({ name: 'everything__simple-prompt' });
      assert.deepEqual(prompt.messages[0].content, { type: 'text', text: 'This is a simple prompt without arguments.' });

      const templates = (await client.listResourceTemplates()).resourceTemplates;
      const text = templates.find((t) => t.uriTemplate === 'demo://resource/dynamic/text/{resourceId}');
      assert.equal(text?.name, 'everything__Dynamic Text Resource', JSON.stringify(templates));

      const uris = (await client.listResources()).resources.map((r) => r.uri);
      assert.ok(uris.includes('demo://resource/static/document/features.md'), `${uris}`);
      assert.ok(uris.includes('graph://listing'), `${uris}`);

      const doc = await client.readResource({ uri: 'demo://resource/static/document/features.md' });
      assert.equal(doc.contents[0].uri, 'demo://resource/static/document/features.md');
      assert.equal((doc.contents[0] as { text: string }).text, readFileSync(path.join(EVERYTHING_DOCS, 'features.md'), 'utf8'));

      const dynamic = await client.readResource({ uri: 'demo://resource/dynamic/text/7' });
      assert.match((dynamic.contents[0] as { text: string }).text, /^Resource 7: This is a plaintext resource/);
      const reads = m.everythingWire.sent('resources/read').map((r) => r.params.uri);
      assert.deepEqual(reads.slice(-2), ['demo://resource/static/document/features.md', 'demo://resource/dynamic/text/7']);
    });
  });

  describe('prefix: always, completions', () => {
    let fg: FederationGateway;
    before(async () => {
      fg = await startFederation(m, { prefix: 'always', members: { everything: {}, memory: { prefix: 'mem' } } });
    });
    after(async () => { await fg?.close(); });

    test('completion/complete routes a prefixed prompt by name and a resource template by URI', async () => {
      const { client } = await fg.v1('acme');
      const dept = await client.complete({ ref: { type: 'ref/prompt', name: 'everything__completable-prompt' }, argument: { name: 'department', value: 'Eng' } });
      assert.deepEqual(dept.completion.values, ['Engineering']);
      const lead = await client.complete({
        ref: { type: 'ref/prompt', name: 'everything__completable-prompt' },
        argument: { name: 'name', value: '' },
        context: { arguments: { department: 'Sales' } },
      });
      assert.deepEqual(lead.completion.values, ['David', 'Eve', 'Frank']);
      const id = await client.complete({ ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' }, argument: { name: 'resourceId', value: '12' } });
      assert.deepEqual(id.completion.values, ['12']);
      const prompt = await client.getPrompt({ name: 'everything__completable-prompt', arguments: { department: 'Sales', name: 'Eve' } });
      assert.deepEqual(prompt.messages[0].content, { type: 'text', text: 'Please promote Eve to the head of the Sales team.' });
      const sent = m.everythingWire.sent('completion/complete').map((c) => c.params.ref.name ?? c.params.ref.uri);
      assert.deepEqual(sent.slice(-3), ['completable-prompt', 'completable-prompt', 'demo://resource/dynamic/text/{resourceId}']);
    });
  });

  describe('a separator of its own', () => {
    let fg: FederationGateway;
    before(async () => {
      fg = await startFederation(m, { prefix: 'always', separator: '.', members: { everything: {}, memory: { prefix: 'mem' } } });
    });
    after(async () => { await fg?.close(); });

    test('names are <prefix>.<name>, and calls route by them', async () => {
      const { client } = await fg.v1('acme');
      const names = await toolNames(client);
      assert.ok(names.includes('everything.echo') && names.includes('mem.read_graph'), `${names}`);
      assert.ok(!names.some((n) => n.includes('__')), `${names}`);
      assert.equal(textOf(await client.callTool({ name: 'everything.echo', arguments: { message: 'dotted' } })), 'Echo: dotted');
    });
  });

  describe('prefix: on-collision (the default, not written)', () => {
    let fg: FederationGateway;
    before(async () => {
      fg = await startFederation(m, { members: { everything: {}, everything2: { prefix: 'ev2' }, memory: {} } });
    });
    after(async () => { await fg?.close(); });

    test('colliding names are prefixed in every member having them; unique ones stay as they are', async () => {
      const { client } = await fg.v1('acme');
      const names = await toolNames(client);
      for (const t of EVERYTHING_TOOLS) {
        assert.ok(names.includes(`everything__${t}`) && names.includes(`ev2__${t}`), `${t} prefixed in both: ${names}`);
        assert.ok(!names.includes(t), `bare ${t} is not shown`);
      }
      for (const t of MEMORY_TOOLS) assert.ok(names.includes(t), `${t} unprefixed: ${names}`);
      assert.ok(!names.some((n) => n.startsWith('memory__')), `${names}`);

      const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
      assert.ok(prompts.includes('everything__simple-prompt') && prompts.includes('ev2__simple-prompt'), `${prompts}`);
    });

    test('each prefixed twin reaches its own member; unprefixed names reach theirs', async () => {
      const { client } = await fg.v1('acme');
      const seen = m.everythingWire.sent('tools/call').length;
      assert.equal(textOf(await client.callTool({ name: 'everything__echo', arguments: { message: 'one' } })), 'Echo: one');
      assert.equal(textOf(await client.callTool({ name: 'ev2__echo', arguments: { message: 'two' } })), 'Echo: two');
      // Both members are the same server behind two upstream names: it received two plain `echo` calls.
      const calls = m.everythingWire.sent('tools/call').slice(seen);
      assert.deepEqual(calls.map((c) => [c.params.name, c.params.arguments.message]), [['echo', 'one'], ['echo', 'two']]);
      const graph = await client.callTool({ name: 'read_graph', arguments: {} });
      assert.ok(Array.isArray(JSON.parse(textOf(graph)).entities), textOf(graph));
      // The bare name of a colliding tool is shown nowhere, so it names no tool.
      await assert.rejects(client.callTool({ name: 'echo', arguments: { message: 'which?' } }), /unknown tool/i);
      assert.equal(m.everythingWire.sent('tools/call').length, seen + 2, 'the ambiguous call reached no member');
    });
  });

  describe('prefix: never', () => {
    let colliding: FederationGateway;
    let distinct: FederationGateway;
    before(async () => {
      colliding = await startFederation(m, { prefix: 'never', members: { everything: {}, everything2: {} } });
      distinct = await startFederation(m, { prefix: 'never', members: { everything: {}, memory: {}, graphs: {} } });
    });
    after(async () => { await colliding?.close(); await distinct?.close(); });

    test('a collision makes the listing a JSON-RPC error naming the name and both members', async () => {
      const s = await openRawSession(colliding.url, await tokenFor('acme'));
      try {
        for (const method of ['tools/list', 'prompts/list']) {
          const answer = await rawRequest(s, method);
          assert.ok(answer.reply, `${method}: an answer with id ${answer.id} (HTTP ${answer.status}: ${answer.text})`);
          assert.equal(answer.reply.id, answer.id);
          assert.equal(answer.reply.result, undefined, JSON.stringify(answer.reply));
          const error = answer.reply.error as { code: number; message: string; data?: { code?: string } };
          assert.equal(typeof error.code, 'number');
          assert.equal(error.data?.code, 'GW_ERR_FEDERATION_NAME_COLLISION', JSON.stringify(error));
          assert.match(error.message, /"everything"/);
          assert.match(error.message, /"everything2"/);
          // Every name of the one server collides; the message names one of them as the server calls it.
          assert.match(error.message, method === 'tools/list'
            ? /"(echo|get-[a-z-]+|gzip-file-as-resource|toggle-[a-z-]+|trigger-[a-z-]+|simulate-research-query)"/
            : /"[a-z]+-prompt"/);
        }
      } finally {
        await closeRawSession(s);
      }
    });

    test('without a collision every name is the member\'s own and calls route', async () => {
      const { client } = await distinct.v1('acme');
      const names = await toolNames(client);
      for (const t of [...EVERYTHING_TOOLS, ...MEMORY_TOOLS, ...GRAPHS_TOOLS]) assert.ok(names.includes(t), `${t} in ${names}`);
      assert.ok(!names.some((n) => n.includes('__')), `${names}`);
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'plain' } })), 'Echo: plain');
      assert.match(textOf(await client.callTool({ name: 'list_graphs', arguments: {} })), FALKOR_LIST_GRAPHS);
    });
  });
});
