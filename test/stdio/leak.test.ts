/**
 * Hundreds of sessions opened through the gateway and abandoned (no DELETE, some mid-call): every
 * session expires, every process is stopped and reaped, the gateway lists no session any more, and the
 * child count and descriptor count return to baseline.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { StdioUpstream } from '../../gateway/stdio/upstream.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { authPlugins, GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { children, fdCount, oneShotFetch, waitFor } from './fixtures.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');

/** Descriptors may differ by a few from lazily opened handles (e.g. a DNS or timer fd); a leak is per session. */
const FD_SLACK = 4;
/**
 * Sessions expire after this long without an exchange in progress. Kept well above the gaps between a
 * client's requests (initialize → initialized → GET), which a loaded 2-core machine running 20 clients
 * at once stretched past 1s (a session expired under a live client: 404 GW_ERR_SESSION_NOT_FOUND).
 */
const IDLE = '2s';

describe('stdio upstream leaks, through the gateway', () => {
  const gateways: TestGateway[] = [];
  after(async () => {
    await Promise.all(gateways.map((g) => g.close()));
  });

  async function gateway(stdio: string): Promise<{ gw: TestGateway; upstream: StdioUpstream }> {
    const gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  leaky:
    stdio: ${stdio}
routes:
  - { listener: main, path: /mcp, upstream: leaky, plugins: ${authPlugins()} }
`, { env: GATEWAY_ENV });
    gateways.push(gw);
    return { gw, upstream: gw.gw.runtime().upstreams.get('leaky')!.stdio! };
  }

  async function connect(gw: TestGateway, tenant: string, sub: string) {
    const client = new Client({ name: `leak-${sub}`, version: '1' }, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(new URL(`${gw.url()}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${await tokenFor(tenant, { sub })}` } },
      // One connection per request: pooled keep-alive sockets would hide or fake descriptor leaks.
      fetch: oneShotFetch,
    });
    await client.connect(transport);
    return { client, transport };
  }

  async function settle(gw: TestGateway, upstream: StdioUpstream): Promise<void> {
    await waitFor('every session expired and every process stopped', () => upstream.sessions().length === 0 && upstream.processes().length === 0, 30_000);
    await waitFor('children reaped', () => children().pids.length === 0, 10_000);
    assert.deepEqual(gw.gw.sessions.list(), [], 'the gateway lists no session the upstream ended');
  }

  test('shared mode (server-memory): 300 abandoned sessions over 3 tenants', async () => {
    const { gw, upstream } = await gateway(`{ command: mcp-server-memory, pathEnv: { MEMORY_FILE_PATH: "data/leak-{tenant}.jsonl" }, idleTimeout: ${IDLE} }`);
    // Warm up (lazy modules, the first child) and take the baseline once everything is idle again.
    const warm = await connect(gw, 't0', 'warm');
    await warm.client.callTool({ name: 'read_graph', arguments: {} });
    await warm.client.close();
    await settle(gw, upstream);
    const baseFds = fdCount();
    assert.equal(children().pids.length, 0);

    let peakChildren = 0;
    for (let batch = 0; batch < 15; batch++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const n = batch * 20 + i;
          const s = await connect(gw, `t${n % 3}`, `u${n}`);
          await s.client.callTool({ name: 'read_graph', arguments: {} });
          if (n % 4 === 0) await s.transport.terminateSession(); // a polite client
          if (n % 4 === 1) void s.client.callTool({ name: 'read_graph', arguments: {} }).catch(() => {}); // leaves mid-call
          await s.client.close(); // every other client just goes away
        }),
      );
      peakChildren = Math.max(peakChildren, children().pids.length);
    }
    assert.ok(peakChildren <= 3, `one process per tenant, never more (saw ${peakChildren})`);
    await settle(gw, upstream);
    assert.equal(children().zombies, 0);
    const fds = fdCount();
    assert.ok(fds <= baseFds + FD_SLACK, `descriptors back to baseline: ${baseFds} before, ${fds} after`);
  });

  test('per-session mode: 40 abandoned sessions, each with its own process', async () => {
    const { gw, upstream } = await gateway(
      `{ command: node, args: ["${FAKE}"], mode: per-session, idleTimeout: ${IDLE}, maxProcesses: 10, maxProcessesPerTenant: 10 }`,
    );
    const warm = await connect(gw, 'p', 'warm');
    await warm.client.close();
    await settle(gw, upstream);
    const baseFds = fdCount();
    for (let batch = 0; batch < 4; batch++) {
      await Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const s = await connect(gw, 'p', `u${batch}-${i}`);
          await s.client.callTool({ name: 'echo', arguments: { text: 'x' } });
          if (i % 2 === 0) void s.client.callTool({ name: 'sleep', arguments: { ms: 2000 } }).catch(() => {});
          await s.client.close();
        }),
      );
      assert.equal(upstream.processes().length, 10, 'one process per session');
      // 10 processes per batch; reaping between batches keeps the test's memory bounded.
      await settle(gw, upstream);
    }
    assert.equal(children().zombies, 0);
    const fds = fdCount();
    assert.ok(fds <= baseFds + FD_SLACK, `descriptors back to baseline: ${baseFds} before, ${fds} after`);
  });
});
