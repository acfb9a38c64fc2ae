/**
 * Stdio upstreams across config reloads: one whose config did not change keeps its process and its
 * sessions; one whose config changed is replaced, and the old one's sessions end (and are no longer
 * listed) once the old configuration is done.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { children, textOf, waitFor } from './fixtures.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');

const config = (idle: string, extraRoute = '') => `
listeners: [{ name: main, port: 0 }]
upstreams:
  fake:
    stdio: { command: node, args: ["${FAKE}"], idleTimeout: ${idle} }
routes:
  - { listener: main, path: /mcp, upstream: fake }${extraRoute}
`;

describe('stdio upstreams across reloads', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway(config('1h'));
  });
  after(async () => {
    await gw?.close();
    await waitFor('no child left', () => children().pids.length === 0);
  });

  const reload = async (yaml: string) => {
    await writeFile(path.join(gw.dir, 'gateway.yaml'), yaml);
    assert.deepEqual(await gw.gw.reload(), { ok: true });
  };

  test('an unchanged stdio upstream keeps its process and sessions; a changed one is replaced and its sessions end', async () => {
    const client = new Client({ name: 'reload', version: '1' }, { capabilities: {} });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${gw.url()}/mcp`)));
    const pid = JSON.parse(textOf(await client.callTool({ name: 'stats', arguments: {} }))).pid;
    const first = gw.gw.runtime().upstreams.get('fake')!.stdio!;

    await reload(config('1h', '\n  - { listener: main, path: /other, upstream: fake }'));
    assert.equal(gw.gw.runtime().upstreams.get('fake')!.stdio, first, 'the same upstream serves the new config');
    const again = JSON.parse(textOf(await client.callTool({ name: 'stats', arguments: {} })));
    assert.equal(again.pid, pid, 'same process, same session');
    assert.equal(gw.gw.sessions.list().length, 1);

    await reload(config('2h'));
    const second = gw.gw.runtime().upstreams.get('fake')!.stdio!;
    assert.notEqual(second, first, 'a changed config gets a new upstream');
    // The old upstream closes once the old configuration has no exchange left (the client's GET stream
    // is one): its session ends, its process stops, and the gateway forgets the session.
    await client.close();
    await waitFor('the old process stopped', () => first.processes().length === 0 && !children().pids.includes(pid));
    await waitFor('the old session is no longer listed', () => gw.gw.sessions.list().length === 0);
    assert.equal(first.sessions().length, 0);
  });
});
