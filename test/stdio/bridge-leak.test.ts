/**
 * Hundreds of sessions opened and abandoned (no DELETE, some mid-call): every session expires, every
 * process is stopped and reaped, and the gateway's child count and descriptor count return to baseline.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bridgeFor, children, connect, fdCount, oneShotFetch, waitFor } from './fixtures.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');

/** Descriptors may differ by a few from lazily opened handles (e.g. a DNS or timer fd); a leak is per session. */
const FD_SLACK = 4;
/**
 * Sessions expire after this long without HTTP activity. Kept well above the gaps between a client's
 * requests (initialize → initialized → GET), which a loaded 2-core machine running 20 clients at once
 * stretched past 1s (a session expired under a live client: 404 GW_ERR_SESSION_NOT_FOUND).
 */
const IDLE = '2s';

describe('stdio bridge leaks', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-stdio-leak-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function settle(bridge: { sessions(): unknown[]; processes(): unknown[] }): Promise<void> {
    await waitFor('every session expired and every process stopped', () => bridge.sessions().length === 0 && bridge.processes().length === 0, 30_000);
    await waitFor('children reaped', () => children().pids.length === 0, 10_000);
  }

  test('shared mode (server-memory): 300 abandoned sessions over 3 tenants', async () => {
    const bridge = await bridgeFor(
      { command: 'mcp-server-memory', pathEnv: { MEMORY_FILE_PATH: 'data/leak-{tenant}.jsonl' }, idleTimeout: IDLE },
      { configDir: dir },
    );
    try {
      // Warm up (lazy modules, the first child) and take the baseline once everything is idle again.
      const warm = await connect(bridge, 't0', 'warm', {}, { fetch: oneShotFetch });
      await warm.client.callTool({ name: 'read_graph', arguments: {} });
      await warm.client.close();
      await settle(bridge);
      const baseFds = fdCount();
      assert.equal(children().pids.length, 0);

      let peakChildren = 0;
      for (let batch = 0; batch < 15; batch++) {
        await Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            const n = batch * 20 + i;
            const s = await connect(bridge, `t${n % 3}`, `u${n}`, {}, { fetch: oneShotFetch });
            await s.client.callTool({ name: 'read_graph', arguments: {} });
            if (n % 4 === 0) await s.transport.terminateSession(); // a polite client
            if (n % 4 === 1) void s.client.callTool({ name: 'read_graph', arguments: {} }).catch(() => {}); // leaves mid-call
            await s.client.close(); // every other client just goes away
          }),
        );
        peakChildren = Math.max(peakChildren, children().pids.length);
      }
      assert.ok(peakChildren <= 3, `one process per tenant, never more (saw ${peakChildren})`);
      await settle(bridge);
      const { zombies } = children();
      assert.equal(zombies, 0);
      const fds = fdCount();
      assert.ok(fds <= baseFds + FD_SLACK, `descriptors back to baseline: ${baseFds} before, ${fds} after`);
    } finally {
      await bridge.close();
    }
  });

  test('per-session mode: 40 abandoned sessions, each with its own process', async () => {
    const bridge = await bridgeFor({ command: 'node', args: [FAKE], mode: 'per-session', idleTimeout: IDLE, maxProcesses: 10, maxProcessesPerTenant: 10 }, { configDir: dir });
    try {
      const warm = await connect(bridge, 'p', 'warm', {}, { fetch: oneShotFetch });
      await warm.client.close();
      await settle(bridge);
      const baseFds = fdCount();
      for (let batch = 0; batch < 4; batch++) {
        await Promise.all(
          Array.from({ length: 10 }, async (_, i) => {
            const s = await connect(bridge, 'p', `u${batch}-${i}`, {}, { fetch: oneShotFetch });
            await s.client.callTool({ name: 'echo', arguments: { text: 'x' } });
            if (i % 2 === 0) void s.client.callTool({ name: 'sleep', arguments: { ms: 2000 } }).catch(() => {});
            await s.client.close();
          }),
        );
        assert.equal(bridge.processes().length, 10, 'one process per session');
        // 10 processes per batch; reaping between batches keeps the test's memory bounded.
        await settle(bridge);
      }
      assert.equal(children().zombies, 0);
      const fds = fdCount();
      assert.ok(fds <= baseFds + FD_SLACK, `descriptors back to baseline: ${baseFds} before, ${fds} after`);
    } finally {
      await bridge.close();
    }
  });
});
