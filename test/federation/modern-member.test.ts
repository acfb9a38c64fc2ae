/**
 * A 2026-07-28 member (an SDK v2 server, pinned `era: "2026"`) beside a 2025 one: the federation reaches
 * it through the to-modern translator, holds no session for it, and relays its list changes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startTestGateway } from '../helpers/gateway.ts';
import { authPlugins, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { connectV1, connectV2, textOf } from '../helpers/v2-client.ts';
import { startV2Server } from '../helpers/v2-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { startScriptedMember } from './scripted-member.ts';

test('a 2026 member and a 2025 member behind one endpoint, for clients of both eras', async (t) => {
  const modern = await startV2Server();
  const legacy = await startScriptedMember('legacy', ['alpha']);
  t.after(async () => { await modern.close(); await legacy.close(); });
  const gw = await startTestGateway(`
listeners: [{ name: main, host: 127.0.0.1, port: 0 }]
upstreams:
  modern: { url: ${modern.url}, era: "2026" }
  legacy: { url: ${legacy.url} }
  fed:
    federation:
      prefix: always
      members: { modern: { prefix: m }, legacy: { prefix: l } }
routes:
  - { name: fed, listener: main, path: /mcp, upstream: fed, plugins: ${authPlugins()} }
`, { env: GATEWAY_ENV });
  t.after(() => gw.close());
  const url = `${gw.url()}/mcp`;
  const token = await tokenFor('acme');

  const asked: string[] = [];
  const v1 = await connectV1(url, { token, onElicit: (p) => { asked.push(p.message); return { action: 'accept', content: { graph: 'chosen' } }; } });
  t.after(() => v1.close());
  let changes = 0;
  v1.client.setNotificationHandler(ToolListChangedNotificationSchema, async () => { changes++; });
  const names = async () => (await v1.client.listTools()).tools.map((x) => x.name);
  assert.deepEqual((await names()).filter((n) => n.startsWith('l__')), ['l__alpha']);
  assert.ok((await names()).includes('m__echo'));
  assert.equal(textOf(await v1.client.callTool({ name: 'm__echo', arguments: { text: 'through two translations' } })), 'through two translations');
  // The modern member was asked statelessly: no initialize, no session id, its version on every request.
  assert.ok(modern.seen.length > 0);
  assert.ok(modern.seen.every((r) => r.headers['mcp-session-id'] === undefined));
  assert.ok(!modern.seen.some((r) => (r.body as { method?: string } | undefined)?.method === 'initialize'));

  // The member's multi round-trip request reaches the 2025 client as elicitation/create (the translator
  // asks, the federation renames its id), and the answer finds its way back.
  assert.equal(textOf(await v1.client.callTool({ name: 'm__pick_graph', arguments: { graphName: 'g1' } })), 'picked chosen (asked about g1)');
  assert.deepEqual(asked, ['Which graph instead of g1?']);

  // The client's GET stream follows the modern member's subscriptions/listen stream.
  await waitFor(() => modern.seen.some((r) => (r.body as { method?: string } | undefined)?.method === 'subscriptions/listen'), 'the federation listens to the modern member');
  // (The listen request is seen on arrival, a moment before the server subscribes it: until a change is
  // told, keep adding tools.)
  let added = 0;
  await waitFor(() => {
    if (changes > 0) return true;
    modern.addTool(added === 0 ? 'fresh' : `fresh${added}`);
    added++;
    return false;
  }, 'tools list_changed reaches the 2025 client', 20_000, 250);
  assert.ok((await names()).includes('m__fresh'), 'the cached listing was dropped');

  const v2 = await connectV2(url, { token, mode: 'pin-2026', listChanged: true, onElicit: () => ({ action: 'accept', content: { graph: 'other' } }) });
  t.after(() => v2.close());
  assert.equal(v2.era, 'modern');
  assert.equal(textOf(await v2.client.callTool({ name: 'l__alpha', arguments: {} })), 'legacy ran alpha {}');
  assert.equal(textOf(await v2.client.callTool({ name: 'm__fresh', arguments: {} })), 'fresh called');
  // …and a 2026 client gets it back as input_required: three translations, one answer.
  assert.equal(textOf(await v2.client.callTool({ name: 'm__pick_graph', arguments: { graphName: 'g2' } })), 'picked other (asked about g2)');

  // A 2026 client's subscriptions/listen follows the federation's merged stream, which follows the
  // member's own listen: a change there reaches it, through both translators.
  const changed = v2.toolsChanged();
  let more = 0;
  let told = false;
  void changed.then(() => { told = true; });
  await waitFor(() => {
    if (told) return true;
    modern.addTool(`later${more++}`);
    return false;
  }, 'tools list_changed reaches the 2026 client', 20_000, 250);
  assert.ok((await v2.client.listTools()).tools.some((x) => x.name === 'm__later0'));
});
