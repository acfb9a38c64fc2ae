/**
 * A member that fails: `nowhere` points at a port nobody listens on from the start, `hung` accepts
 * connections and never answers (listTimeout bounds it); FalkorDB (`graphs`)
 * is killed in the middle of a test. Listings go on with the other members (the failing member's names
 * vanish), calls to the others work, a call to the failing member is a JSON-RPC error carrying the
 * request's id (never a hang: every raw request has a deadline), and the gateway log warns naming the
 * member. The /readyz tests are marked: readiness of federation members is written separately.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { waitFor } from '../helpers/wait.ts';
import {
  FALKOR_LIST_GRAPHS, GRAPHS_TOOLS, redisAvailable, startFederation, startMembers, textOf, toolNames, tokenFor,
  type FederationGateway, type Members,
} from './fixtures.ts';
import { closeRawSession, openRawSession, rawRequest } from './fixtures-raw.ts';

const redis = await redisAvailable();

/** A warning of the gateway (not the start-up reachability check's) that names the member. */
function warnsAbout(fg: FederationGateway, member: string): boolean {
  return fg.warnings().some((l) => JSON.stringify(l).includes(member));
}

/** The /readyz check of the federation `workspace`, as JSON text, or undefined when there is none. */
async function federationReadiness(fg: FederationGateway): Promise<{ status: number; body: string; check?: string }> {
  const res = await fetch(`${fg.tg.adminUrl()}/readyz`, { signal: AbortSignal.timeout(60_000) });
  const body = await res.text();
  const checks = (JSON.parse(body) as { checks?: Array<{ name: string }> }).checks ?? [];
  const mine = checks.find((c) => /workspace|federation/.test(c.name));
  return { status: res.status, body, check: mine && JSON.stringify(mine) };
}

describe('a federation member down from the start', () => {
  let m: Members;
  let fg: FederationGateway;
  before(async () => {
    m = await startMembers();
    fg = await startFederation(m, { prefix: 'always', members: { everything: {}, nowhere: {}, memory: { prefix: 'mem' } } });
  });
  after(async () => {
    await fg?.close();
    await m?.close();
  });

  test('listings show the other members\' tools, their calls work, and the log warns naming the member', async () => {
    const { client } = await fg.v1('acme');
    const names = await toolNames(client);
    assert.ok(names.includes('everything__echo') && names.includes('mem__read_graph'), `${names}`);
    assert.deepEqual(names.filter((n) => n.startsWith('nowhere__')), []);
    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    assert.ok(prompts.includes('everything__simple-prompt'), `${prompts}`);

    assert.equal(textOf(await client.callTool({ name: 'everything__echo', arguments: { message: 'still here' } })), 'Echo: still here');
    const graph = await client.callTool({ name: 'mem__read_graph', arguments: {} });
    assert.ok(Array.isArray(JSON.parse(textOf(graph)).entities), textOf(graph));

    await waitFor(() => warnsAbout(fg, 'nowhere'), 'a gateway warning naming the member "nowhere"');
  });

  test('a call to the down member is a JSON-RPC error with the request\'s id', async () => {
    const s = await openRawSession(fg.url, await tokenFor('acme'));
    try {
      const call = await rawRequest(s, 'tools/call', { name: 'nowhere__echo', arguments: { message: 'x' } });
      assert.ok(call.reply, `an answer to id ${call.id} (HTTP ${call.status}: ${call.text})`);
      assert.equal(call.reply.id, call.id);
      assert.equal(call.reply.result, undefined, JSON.stringify(call.reply));
      assert.equal(typeof call.reply.error?.code, 'number', JSON.stringify(call.reply));
      assert.equal(call.reply.error.data?.code, 'GW_ERR_UPSTREAM_UNREACHABLE', JSON.stringify(call.reply));
      // The session is still usable afterwards.
      const echo = await rawRequest(s, 'tools/call', { name: 'everything__echo', arguments: { message: 'after' } });
      assert.equal(textOf(echo.reply?.result), 'Echo: after', echo.text);
    } finally {
      await closeRawSession(s);
    }
  });

  test('[readiness, written separately] /readyz has a federation check naming the failing member', async () => {
    const { client } = await fg.v1('acme');
    await toolNames(client); // a listing, so the federation has tried every member
    const r = await federationReadiness(fg);
    assert.ok(r.check, `a check for the federation "workspace" in /readyz: ${r.body}`);
    assert.match(r.check, /nowhere/);
  });
});

describe('a federation member that accepts connections and never answers', () => {
  let m: Members;
  let fg: FederationGateway;
  before(async () => {
    m = await startMembers();
    fg = await startFederation(m, { prefix: 'always', listTimeout: '5s', members: { everything: {}, hung: {}, memory: { prefix: 'mem' } } });
  });
  after(async () => {
    await fg?.close();
    await m?.close();
  });

  test('listings go on without it, and a call to it is a JSON-RPC error with the id', async () => {
    const s = await openRawSession(fg.url, await tokenFor('acme'));
    try {
      const list = await rawRequest(s, 'tools/list');
      assert.equal(list.reply?.id, list.id, list.text);
      const names: string[] = (list.reply?.result?.tools ?? []).map((t: { name: string }) => t.name);
      assert.ok(names.includes('everything__echo') && names.includes('mem__read_graph'), `${names}`);
      assert.deepEqual(names.filter((n) => n.startsWith('hung__')), []);

      const call = await rawRequest(s, 'tools/call', { name: 'hung__echo', arguments: { message: 'x' } });
      assert.ok(call.reply, `an answer to id ${call.id} (HTTP ${call.status}: ${call.text})`);
      assert.equal(call.reply.id, call.id);
      assert.equal(typeof call.reply.error?.code, 'number', JSON.stringify(call.reply));
      // A member that never answers times out (docs/federation.md: GW_ERR_UPSTREAM_TIMEOUT).
      assert.match(String(call.reply.error.data?.code), /^GW_ERR_UPSTREAM_(UNREACHABLE|TIMEOUT)$/, JSON.stringify(call.reply));

      const echo = await rawRequest(s, 'tools/call', { name: 'everything__echo', arguments: { message: 'unblocked' } });
      assert.equal(textOf(echo.reply?.result), 'Echo: unblocked', echo.text);
      await waitFor(() => warnsAbout(fg, 'hung'), 'a gateway warning naming the member "hung"');
    } finally {
      await closeRawSession(s);
    }
  });
});

describe('a federation member that dies mid-test (FalkorDB killed)', { skip: redis.ok ? false : redis.reason }, () => {
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

  test('its tools vanish from listings, the others keep working, and calling it is a JSON-RPC error with the id', async () => {
    const { client } = await fg.v1('acme');
    let toolsChanged = 0;
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => { toolsChanged++; });
    const s = await openRawSession(fg.url, await tokenFor('acme'));
    try {
      for (const t of GRAPHS_TOOLS) assert.ok((await toolNames(client)).includes(`graphs__${t}`), t);
      assert.match(textOf(await client.callTool({ name: 'graphs__list_graphs', arguments: {} })), FALKOR_LIST_GRAPHS);
      const alive = await rawRequest(s, 'tools/call', { name: 'graphs__list_graphs', arguments: {} });
      assert.match(textOf(alive.reply?.result), FALKOR_LIST_GRAPHS, alive.text);

      await m.killGraphs();

      // No listing cache (listTtl defaults to 0): the next listing already lacks them; waitFor only
      // absorbs a slow machine.
      let names: string[] = [];
      await waitFor(async () => {
        names = await toolNames(client);
        return !names.some((n) => n.startsWith('graphs__'));
      }, 'graphs__ tools to vanish from tools/list', 60_000, 250);
      assert.ok(names.includes('everything__echo') && names.includes('mem__read_graph'), `${names}`);
      assert.equal(textOf(await client.callTool({ name: 'everything__echo', arguments: { message: 'survivor' } })), 'Echo: survivor');

      const dead = await rawRequest(s, 'tools/call', { name: 'graphs__list_graphs', arguments: {} });
      assert.ok(dead.reply, `an answer to id ${dead.id} (HTTP ${dead.status}: ${dead.text})`);
      assert.equal(dead.reply.id, dead.id);
      assert.equal(dead.reply.result, undefined, JSON.stringify(dead.reply));
      assert.equal(typeof dead.reply.error?.code, 'number', JSON.stringify(dead.reply));
      await assert.rejects(client.callTool({ name: 'graphs__list_graphs', arguments: {} }));

      await waitFor(() => warnsAbout(fg, 'graphs'), 'a gateway warning naming the member "graphs"');
      // docs/federation.md: clients holding a GET stream are told to re-list when a member fails.
      await waitFor(() => toolsChanged > 0, 'notifications/tools/list_changed after the member failed', 60_000);
      const mem = await rawRequest(s, 'tools/call', { name: 'mem__read_graph', arguments: {} });
      assert.ok(Array.isArray(JSON.parse(textOf(mem.reply?.result)).entities), mem.text);
    } finally {
      await closeRawSession(s);
    }
  });

  test('[readiness, written separately] /readyz has a federation check naming the dead member', async () => {
    const r = await federationReadiness(fg);
    assert.ok(r.check, `a check for the federation "workspace" in /readyz: ${r.body}`);
    assert.match(r.check, /graphs/);
  });
});
