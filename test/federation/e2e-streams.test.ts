/**
 * What flows back through the federation's fan-in, with server-everything as the member (its tool names
 * were read from its package, and are checked against the listing): progress notifications for a
 * call carrying a progressToken, an elicitation request answered by the client, cancellation of a long
 * call, and `notifications/resources/list_changed` (server-everything registers a session resource, and
 * announces it on its GET stream, when `gzip-file-as-resource` runs) and resource subscriptions. All
 * through a 2025 client (SDK v1).
 */
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { ResourceListChangedNotificationSchema, ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { waitFor } from '../helpers/wait.ts';
import type { ElicitParams } from '../helpers/v2-client.ts';
import { startFederation, startMembers, textOf, toolNames, type FederationGateway, type Members } from './fixtures.ts';

const LONG = 'everything__trigger-long-running-operation';
const ELICIT = 'everything__trigger-elicitation-request';
const GZIP = 'everything__gzip-file-as-resource';

/** Starts a two-minute call and resolves once its first progress shows it running at the member. */
async function runningLongCall(client: Client): Promise<{ pending: Promise<unknown>; ac: AbortController }> {
  const ac = new AbortController();
  let progressed = false;
  const pending = client.callTool({ name: LONG, arguments: { duration: 120, steps: 120 } }, undefined, {
    signal: ac.signal,
    onprogress: () => { progressed = true; },
    timeout: 300_000,
  });
  pending.catch(() => {});
  await waitFor(() => progressed, 'the first progress notification (the call is running at the member)', 60_000);
  return { pending, ac };
}

describe('progress, elicitation, cancellation and list_changed through a federation', () => {
  let m: Members;
  let fg: FederationGateway;
  const asked: ElicitParams[] = [];
  const v1 = () => fg.v1('acme', {
    onElicit: (params) => {
      asked.push(params);
      return { action: 'accept', content: { name: 'Federated Fred', check: true } };
    },
  });

  /** GET streams server-everything has answered so far (only ever grows). */
  const openedGets = () => m.everythingWire.requests.filter((r) => r.method === 'GET' && r.status === 200).length;

  before(async () => {
    m = await startMembers();
    fg = await startFederation(m, { prefix: 'always', members: { everything: {}, memory: { prefix: 'mem' } } });
  });
  after(async () => {
    await fg?.close();
    await m?.close();
  });

  test('the member\'s progress notifications reach the caller\'s onprogress', async () => {
    const { client } = await v1();
    assert.ok((await toolNames(client)).includes(LONG));
    const progress: Array<[number, number | undefined]> = [];
    const r = await client.callTool({ name: LONG, arguments: { duration: 2, steps: 4 } }, undefined, {
      onprogress: (p) => progress.push([p.progress, p.total]),
      timeout: 120_000,
    });
    assert.equal(textOf(r), 'Long running operation completed. Duration: 2 seconds, Steps: 4.');
    assert.deepEqual(progress, [[1, 4], [2, 4], [3, 4], [4, 4]]);
    // The member got a progressToken (whatever the federation made of the client's own).
    const call = m.everythingWire.sent('tools/call').findLast((c) => c.params.name === 'trigger-long-running-operation');
    assert.notEqual(call?.params._meta?.progressToken, undefined, JSON.stringify(call));
  });

  test('the member\'s elicitation request reaches the client, and the answer reaches the tool', async () => {
    const { client } = await v1();
    const names = await toolNames(client);
    assert.ok(names.includes(ELICIT), `server-everything offers ${ELICIT} to a client declaring elicitation: ${names}`);
    const seen = asked.length;
    const r = await client.callTool({ name: ELICIT, arguments: {} }, undefined, { timeout: 120_000 });
    assert.equal(asked.length, seen + 1, 'one elicitation/create reached the client');
    assert.equal(asked[seen].message, 'Please provide inputs for the following fields:');
    assert.deepEqual((asked[seen].requestedSchema as { required?: string[] }).required, ['name']);
    const text = textOf(r);
    assert.match(text, /User provided the requested information!/);
    assert.match(text, /- Name: Federated Fred/);
    assert.match(text, /- Agreed to terms: true/);
  });

  test('a cancelled call rejects, and the gateway stays usable', async () => {
    const { client } = await v1();
    const { pending, ac } = await runningLongCall(client);
    ac.abort(new Error('the user gave up'));
    await assert.rejects(pending, /the user gave up/);

    assert.equal(textOf(await client.callTool({ name: 'everything__echo', arguments: { message: 'after cancel' } })), 'Echo: after cancel');
    const graph = await client.callTool({ name: 'mem__read_graph', arguments: {} });
    assert.ok(Array.isArray(JSON.parse(textOf(graph)).entities), textOf(graph));
    const other = await v1();
    assert.equal(textOf(await other.client.callTool({ name: 'everything__echo', arguments: { message: 'new session' } })), 'Echo: new session');
  });

  test('the cancellation reaches the member as notifications/cancelled for the member\'s own request id', async () => {
    const { client } = await v1();
    const seen = m.everythingWire.sent('tools/call').length;
    const { pending, ac } = await runningLongCall(client);
    const upstream = m.everythingWire.sent('tools/call').slice(seen).find((c) => c.params.name === 'trigger-long-running-operation');
    assert.ok(upstream, 'the call reached server-everything');
    ac.abort(new Error('stop'));
    await assert.rejects(pending);
    await waitFor(
      () => m.everythingWire.sent('notifications/cancelled').some((n) => n.params?.requestId === upstream.id),
      `notifications/cancelled with requestId ${JSON.stringify(upstream.id)} at server-everything`,
      60_000,
    );
  });

  test('a member\'s notifications/resources/list_changed reaches the client, and the new resource is readable by URI', async () => {
    // server-everything announces changes on its GET stream only: wait for this session's to be open
    // (counted from before the client connects, so an earlier test's stream cannot stand in for it).
    const streamsBefore = openedGets();
    const { client } = await v1();
    let changed = 0;
    client.setNotificationHandler(ResourceListChangedNotificationSchema, () => { changed++; });
    await waitFor(() => openedGets() > streamsBefore, 'the federation to open a GET stream on server-everything', 60_000);
    const uri = 'demo://resource/session/federated-note.txt.gz';
    const before = (await client.listResources()).resources.map((r) => r.uri);
    assert.ok(!before.includes(uri));

    const data = `data:text/plain;base64,${Buffer.from('hello from the federation').toString('base64')}`;
    const r = await client.callTool({ name: GZIP, arguments: { name: 'federated-note.txt.gz', data, outputType: 'resourceLink' } });
    const link = (r.content as Array<{ type: string; uri?: string }>)[0];
    assert.deepEqual([link.type, link.uri], ['resource_link', uri], JSON.stringify(r));

    await waitFor(() => changed > 0, 'notifications/resources/list_changed at the client', 60_000);
    const afterList = (await client.listResources()).resources.map((x) => x.uri);
    assert.ok(afterList.includes(uri), `${afterList}`);
    const read = await client.readResource({ uri });
    const blob = (read.contents[0] as { blob?: string }).blob;
    assert.equal(gunzipSync(Buffer.from(blob ?? '', 'base64')).toString('utf8'), 'hello from the federation');
  });

  test('resources/subscribe is routed by URI, and the member\'s notifications/resources/updated reaches the subscriber', async () => {
    const { client } = await v1();
    const uri = 'demo://resource/static/document/features.md';
    const updated: string[] = [];
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { updated.push(n.params.uri); });
    await client.subscribeResource({ uri });
    assert.ok(m.everythingWire.sent('resources/subscribe').some((x) => x.params.uri === uri), 'server-everything got the subscription');
    // server-everything sends one update at once, then one every 5 s, until toggled off.
    const on = await client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} });
    assert.match(textOf(on), /Started simulated resource updated notifications/);
    try {
      await waitFor(() => updated.includes(uri), `notifications/resources/updated for ${uri}`, 60_000);
      assert.deepEqual([...new Set(updated)], [uri]);
    } finally {
      assert.match(textOf(await client.callTool({ name: 'everything__toggle-subscriber-updates', arguments: {} })), /Stopped simulated resource updates/);
      await client.unsubscribeResource({ uri });
    }
  });

  test('a member\'s list_changed reaches only the client whose member session changed (another tenant\'s sees none)', async () => {
    const streamsBefore = openedGets();
    const acme = (await v1()).client;
    const globex = (await fg.v1('globex')).client;
    const counts = { acme: 0, globex: 0 };
    acme.setNotificationHandler(ResourceListChangedNotificationSchema, () => { counts.acme++; });
    globex.setNotificationHandler(ResourceListChangedNotificationSchema, () => { counts.globex++; });
    await waitFor(() => openedGets() >= streamsBefore + 2, 'GET streams open on server-everything for both sessions', 60_000);
    const gzip = (c: typeof acme, name: string) => c.callTool({
      name: GZIP,
      arguments: { name, data: `data:text/plain;base64,${Buffer.from(name).toString('base64')}`, outputType: 'resourceLink' },
    });

    await gzip(acme, 'acme-only.txt.gz');
    await waitFor(() => counts.acme > 0, 'acme\'s list_changed', 60_000);
    await gzip(globex, 'globex-only.txt.gz');
    await waitFor(() => counts.globex > 0, 'globex\'s list_changed', 60_000);
    assert.equal(counts.globex, 1, 'globex got its own notification, not acme\'s');

    const seen = (await globex.listResources()).resources.map((r) => r.uri);
    assert.ok(seen.includes('demo://resource/session/globex-only.txt.gz'), `${seen}`);
    assert.ok(!seen.includes('demo://resource/session/acme-only.txt.gz'), `${seen}`);
  });
});
