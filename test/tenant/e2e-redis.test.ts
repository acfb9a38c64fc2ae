/**
 * rate-limit with the Redis store, end to end: two gateways on one Redis spend one budget, exactly;
 * a gateway whose Redis is unreachable applies its configured failure mode.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { startGraphUpstream, type GraphUpstream } from '../helpers/graph-upstream.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/upstreams.ts';
import { AUTH_PLUGINS, GATEWAY_ENV, callMessage, openRawSession, post, tokenFor, waitReady, type RefusalBody } from './e2e-support.ts';
import { redisAvailable } from './fixtures.ts';

const redis = await redisAvailable();

function gatewayYaml(upstreamUrl: string, redisUrl: string, keyPrefix: string, rateLimit: string): string {
  return `
listeners: [{ name: main, port: 0 }]
redis: { url: "${redisUrl}", keyPrefix: "${keyPrefix}" }
upstreams:
  graphs: { url: ${upstreamUrl} }
routes:
  - listener: main
    name: graphs
    path: /mcp
    upstream: graphs
    plugins:${AUTH_PLUGINS}
      - ${rateLimit}
      - { type: graph-rewrite }
`;
}

describe('rate-limit on a shared Redis', { skip: redis.ok ? false : redis.reason }, () => {
  let upstream: GraphUpstream;
  const keyPrefix = `mcpgw-test-${randomUUID()}:`;
  const gateways: TestGateway[] = [];
  let admin: Redis;

  before(async () => {
    upstream = await startGraphUpstream({ graphs: { acme_g: ['n'] }, json: true });
    admin = new Redis({ host: '127.0.0.1', port: 6379 });
  });

  after(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await upstream?.close();
    if (admin) {
      const keys = await admin.keys(`${keyPrefix}*`);
      if (keys.length) await admin.del(...keys);
      await admin.quit();
    }
  });

  test('two gateways on one Redis share one budget: exactly 20 of 50 concurrent calls pass', async () => {
    const yaml = gatewayYaml(upstream.url, 'redis://127.0.0.1:6379', keyPrefix,
      '{ type: rate-limit, store: redis, limits: [{ name: calls, points: 20, duration: 1m, match: { method: tools/call } }] }');
    const [a, b] = await Promise.all([startTestGateway(yaml, { env: GATEWAY_ENV }), startTestGateway(yaml, { env: GATEWAY_ENV })]);
    gateways.push(a, b);
    // Until its Redis connection is up a gateway counts in its insurance limiter: wait for it.
    await Promise.all([waitReady(a.adminUrl()), waitReady(b.adminUrl())]);
    const token = await tokenFor('acme');
    const [sa, sb] = await Promise.all([openRawSession(a.url() + '/mcp', token), openRawSession(b.url() + '/mcp', token)]);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => post(i % 2 ? sa : sb, callMessage('query_graph', { graphName: 'g', query: 'MATCH' }))));
    const statuses = answers.map((r) => r.status);
    assert.equal(statuses.filter((s) => s === 200).length, 20, String(statuses));
    assert.equal(statuses.filter((s) => s === 429).length, 30);
    // Both replicas refused some: the budget really is shared, not split.
    assert.ok(answers.filter((r, i) => i % 2 === 0 && r.status === 429).length > 0);
    assert.ok(answers.filter((r, i) => i % 2 === 1 && r.status === 429).length > 0);
    assert.equal(await admin.get(`${keyPrefix}rl:graphs:calls:t:acme`), '50');
  });

  test('Redis unreachable: onStoreError closed answers 503; insurance keeps limiting in memory', async () => {
    const dead = `redis://127.0.0.1:${await freePort()}`;
    const closed = await startTestGateway(gatewayYaml(upstream.url, dead, keyPrefix,
      '{ type: rate-limit, store: redis, onStoreError: closed, limits: [{ name: calls, points: 5, duration: 1m }] }'), { env: GATEWAY_ENV });
    gateways.push(closed);
    const init = await fetch(closed.url() + '/mcp', {
      method: 'POST',
      headers: { authorization: `Bearer ${await tokenFor('acme')}`, accept: 'application/json, text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }),
    });
    assert.equal(init.status, 503);
    assert.equal(((await init.json()) as RefusalBody).error.data.code, 'GW_ERR_RATE_LIMIT_UNAVAILABLE');
    assert.ok(closed.logs().some((l) => l.code === 'GW_ERR_RATE_LIMIT_STORE'), 'the failure is logged');

    const insured = await startTestGateway(gatewayYaml(upstream.url, dead, keyPrefix,
      '{ type: rate-limit, store: redis, limits: [{ name: calls, points: 4, duration: 1m }] }'), { env: GATEWAY_ENV });
    gateways.push(insured);
    // initialize + 3 calls fit the in-memory insurance budget of 4; the 4th call does not.
    const s = await openRawSession(insured.url() + '/mcp', await tokenFor('acme'));
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await post(s, callMessage('query_graph', { graphName: 'g', query: 'MATCH' }))).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
  });
});
