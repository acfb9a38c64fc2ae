/**
 * Readiness probes against real things: a real MCP server, an SSE endpoint that never ends, files on
 * disk, the local Redis.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { commandProbe, httpProbe, readinessChecksFor, redisProbe, runReadiness } from '../../gateway/health.ts';
import { GatewayConfigSchema } from '../../config/schema.ts';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';

describe('httpProbe', () => {
  let everything: RunningUpstream;
  let legacy: RunningUpstream;
  before(async () => {
    [everything, legacy] = await Promise.all([startEverything('streamableHttp'), startEverything('sse')]);
  });
  after(() => Promise.all([everything.close(), legacy.close()]));

  it('finds real MCP servers reachable on both transports, whatever status they answer', async () => {
    for (const url of [`${everything.url}/mcp`, `${legacy.url}/sse`, `${legacy.url}/`]) {
      const t0 = performance.now();
      const r = await httpProbe(url, 2000)();
      assert.equal(r.ok, true, `${url}: ${r.reason}`);
      assert.match(r.detail!, /answered HTTP \d{3}/);
      assert.ok(performance.now() - t0 < 1000, `${url} took too long`);
    }
  });

  it('returns at the response head of a stream that never ends, and closes the connection', async () => {
    let closed!: Promise<void>;
    const sse = createServer((req, res) => {
      closed = new Promise((r) => req.socket.once('close', () => r()));
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': hello\n\n');
    });
    await new Promise<void>((r) => sse.listen(0, '127.0.0.1', r));
    try {
      const { port } = sse.address() as AddressInfo;
      const t0 = performance.now();
      const r = await httpProbe(`http://127.0.0.1:${port}/sse`, 2000)();
      assert.equal(r.ok, true);
      assert.ok(performance.now() - t0 < 1000);
      await closed; // the probe hung up: nothing left open on the upstream
    } finally {
      sse.closeAllConnections();
      await new Promise<void>((r) => sse.close(() => r()));
    }
  });

  it('fails with a timeout reason when the server accepts but never answers', async () => {
    const silent = createServer(() => { /* never answers */ });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const { port } = silent.address() as AddressInfo;
      const r = await httpProbe(`http://127.0.0.1:${port}/mcp`, 200)();
      assert.equal(r.ok, false);
      assert.match(r.reason!, /did not answer within 200ms/);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});

describe('commandProbe', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-health-'));
    await mkdir(path.join(dir, 'bin'));
    await writeFile(path.join(dir, 'bin', 'good-server'), '#!/bin/sh\n');
    await chmod(path.join(dir, 'bin', 'good-server'), 0o755);
    await writeFile(path.join(dir, 'bin', 'not-executable'), 'data');
    await mkdir(path.join(dir, 'bin', 'a-directory'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('finds bare names on the given folders, in order', async () => {
    assert.equal((await commandProbe('good-server', ['/nonexistent', path.join(dir, 'bin')])()).ok, true);
    assert.equal((await commandProbe('node', [path.dirname(process.execPath)])()).ok, true);
  });

  it('refuses missing, non-executable and directory entries', async () => {
    for (const name of ['missing-server', 'not-executable', 'a-directory']) {
      const r = await commandProbe(name, [path.join(dir, 'bin')])();
      assert.equal(r.ok, false, name);
      assert.match(r.reason!, /not found as an executable/);
    }
  });

  it('resolves commands with a slash against the working directory, not PATH', async () => {
    assert.equal((await commandProbe('./bin/good-server', [], dir)()).ok, true);
    const r = await commandProbe('./bin/not-executable', [path.join(dir, 'bin')], dir)();
    assert.equal(r.ok, false);
    assert.match(r.reason!, /missing or not executable/);
  });
});

describe('redisProbe', () => {
  it('fails at once, without queueing, when the client is not connected', async () => {
    const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true });
    try {
      const r = await redisProbe(redis)();
      assert.equal(r.ok, false);
      assert.match(r.reason!, /redis connection is wait/);
    } finally {
      redis.disconnect();
    }
  });

  it('passes against a Redis that answers PING', async (t) => {
    const redis = new Redis({ host: '127.0.0.1', port: 6379, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    try {
      await redis.connect();
    } catch {
      redis.disconnect();
      if (process.env.REQUIRE_REDIS === '1') assert.fail('REQUIRE_REDIS=1 but no Redis answers on 127.0.0.1:6379');
      t.skip('no Redis answers on 127.0.0.1:6379');
      return;
    }
    try {
      assert.deepEqual(await redisProbe(redis)(), { ok: true });
    } finally {
      redis.disconnect();
    }
    const r = await redisProbe(redis)();
    assert.equal(r.ok, false, 'a disconnected client is not ready');
  });
});

describe('readinessChecksFor', () => {
  it('makes one check per upstream (HTTP probe or command probe) and one for Redis', async () => {
    const config = GatewayConfigSchema.parse({
      listeners: [{ name: 'main', port: 0 }],
      upstreams: {
        down: { url: 'http://127.0.0.1:1/mcp' },
        memory: { stdio: { command: 'node', args: ['x.js'] } },
        ghost: { stdio: { command: 'no-such-command-xyz' } },
      },
      routes: [{ listener: 'main', path: '/mcp', upstream: 'memory' }],
    });
    const redis = new Redis({ lazyConnect: true });
    try {
      const checks = readinessChecksFor(config, { configDir: tmpdir(), pathDirs: [path.dirname(process.execPath)], probeTimeoutMs: 1000, redis });
      assert.deepEqual(checks.map((c) => c.name), ['upstream:down', 'upstream:memory', 'upstream:ghost', 'redis']);
      const report = await runReadiness(checks, 1500);
      assert.equal(report.ready, false);
      assert.deepEqual(report.checks.map((c) => [c.name, c.ok]), [['upstream:down', false], ['upstream:memory', true], ['upstream:ghost', false], ['redis', false]]);
    } finally {
      redis.disconnect();
    }
  });
});
