/**
 * Unit tests of the rate-limit plugin against GatewayExchange objects (no gateway, real Redis where
 * marked).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import rateLimit, { RATE_LIMIT_DEGRADED } from '../../plugins/rate-limit/index.ts';
import type { MessageVerdict, Plugin, ResponseHead } from '../../gateway/contract.ts';
import {
  batch, build, call, deps, exchange, json, onRequestMessage, outcome, principal, redisAvailable, rpc,
} from './fixtures.ts';
import { freePort } from '../helpers/upstreams.ts';

function refusals(verdicts: Array<MessageVerdict | void>) {
  return verdicts.filter((v): v is Extract<MessageVerdict, { kind: 'reject' }> => v?.kind === 'reject');
}

/** Sends `n` requests at once, each in its own exchange, as `tenant`. */
async function burst(p: Plugin, n: number, tenant: string, make = () => rpc('tools/list')) {
  return Promise.all(Array.from({ length: n }, async () => {
    const x = exchange({ principal: principal(tenant) });
    assert.equal(await p.onRequest!(x), undefined);
    const v = await onRequestMessage(p, make(), x);
    p.onDone!(x, outcome());
    return v;
  }));
}

test('config: defaults, and errors that name their path', () => {
  const c = rateLimit.config.parse({});
  assert.equal(c.key, 'tenant');
  assert.equal(c.store, 'memory');
  assert.equal(c.onStoreError, 'insurance');
  assert.deepEqual(c.limits.map((l) => [l.name, l.points, l.duration]), [['default', 600, 60_000]]);
  const bad = rateLimit.config.safeParse({
    limits: [{ name: 'a', points: 1, duration: '1m' }, { name: 'a', points: 1, duration: '1500ms' }],
    tenants: { acme: { nope: { points: 3 } } },
    surprise: true,
  });
  assert.equal(bad.success, false);
  const paths = bad.error!.issues.map((i) => i.path.join('.'));
  assert.ok(paths.includes(''), 'unknown key reported'); // strict object: unrecognized key at the root
  assert.ok(paths.includes('limits.1.duration'), `whole seconds required: ${paths}`);
  assert.ok(!rateLimit.config.safeParse({ limits: [{ name: 'x', points: 1, duration: '1s', match: { method: 'tools/list', tools: ['a'] } }] }).success);
});

test('exactly `points` of 50 concurrent requests pass; refusals carry 429, Retry-After and RateLimit headers', async () => {
  const p = await build(rateLimit, { limits: [{ name: 'burst', points: 20, duration: '1m' }] });
  const verdicts = await burst(p, 50, 'acme');
  const refused = refusals(verdicts);
  assert.equal(verdicts.length - refused.length, 20);
  assert.equal(refused.length, 30);
  const r = refused[0];
  assert.equal(r.code, 'GW_ERR_RATE_LIMITED');
  assert.equal(r.rpcCode, -32010);
  assert.equal(r.httpStatus, 429);
  assert.equal(r.data!.httpStatus, undefined, 'the HTTP status is a typed field, not JSON-RPC data');
  const headers = r.httpHeaders!;
  assert.match(headers['retry-after'], /^\d+$/);
  assert.ok(Number(headers['retry-after']) >= 1 && Number(headers['retry-after']) <= 60);
  assert.equal(headers['ratelimit-policy'], '"burst";q=20;w=60');
  assert.match(headers.ratelimit, /^"burst";r=0;t=\d+$/);
  assert.ok((r.data!.retryAfterMs as number) > 0);
});

test('inside a batch the refusal is a per-message error without HTTP status', async () => {
  const p = await build(rateLimit, { limits: [{ name: 'b', points: 2, duration: '1m' }] });
  const x = exchange({ principal: principal('acme') });
  await p.onRequest!(x);
  const vs = [];
  for (let i = 0; i < 4; i++) vs.push(await onRequestMessage(p, rpc('tools/list'), x, batch));
  const refused = refusals(vs);
  assert.equal(refused.length, 2, 'each batch element spends its own point');
  assert.equal(refused[0].httpStatus, undefined);
  assert.ok((refused[0].data!.retryAfterMs as number) > 0);
});

test('notifications and client responses are not counted', async () => {
  const p = await build(rateLimit, { limits: [{ name: 'one', points: 1, duration: '1m' }] });
  const x = exchange({ principal: principal('acme') });
  await p.onRequest!(x);
  for (let i = 0; i < 5; i++) {
    assert.equal(await onRequestMessage(p, { jsonrpc: '2.0', method: 'notifications/progress', params: {} } as never, x), undefined);
    assert.equal(await onRequestMessage(p, { jsonrpc: '2.0', id: i, result: {} } as never, x), undefined);
  }
  assert.equal(await onRequestMessage(p, rpc('ping'), x), undefined);
  assert.equal((await onRequestMessage(p, rpc('ping'), x))?.kind, 'reject');
});

test('tenants have separate budgets; per-tenant overrides; tool limits tighter than the general one', async () => {
  const p = await build(rateLimit, {
    limits: [
      { name: 'all', points: 10, duration: '1m' },
      { name: 'query', points: 3, duration: '1m', match: { method: 'tools/call', tools: ['query_graph'] } },
    ],
    tenants: { bigco: { query: { points: 6 } } },
  });
  const q = () => call('query_graph', { graphName: 'g', query: 'RETURN 1' });
  assert.equal(refusals(await burst(p, 5, 'acme', q)).length, 2, 'acme: 3 queries');
  assert.equal(refusals(await burst(p, 5, 'globex', q)).length, 2, 'globex has its own budget');
  assert.equal(refusals(await burst(p, 8, 'bigco', q)).length, 2, 'bigco override: 6 queries');
  // acme spent 5 of "all" (refused queries count too: refusal happens after "all" was spent), 5 left.
  const lists = refusals(await burst(p, 6, 'acme'));
  assert.equal(lists.length, 1);
  assert.equal(lists[0].data!.limit, 'all');
  // The refused query names the tighter limit.
  const [v] = refusals(await burst(p, 1, 'globex', q));
  assert.equal(v.data!.limit, 'query');
});

test('tool limits take wildcards: one budget for every tool of a federation member', async () => {
  const p = await build(rateLimit, {
    limits: [{ name: 'graphs', points: 2, duration: '1m', match: { method: 'tools/call', tools: ['graphs__*'] } }],
  });
  const graphs = [call('graphs__query_graph', {}), call('graphs__list_graphs', {}), call('graphs__delete_graph', {})];
  let i = 0;
  const spent = refusals(await burst(p, 3, 'acme', () => graphs[i++]));
  assert.equal(spent.length, 1, 'two graph tools pass, the third is over the shared budget');
  assert.equal(spent[0].data!.limit, 'graphs');
  assert.equal(refusals(await burst(p, 3, 'acme', () => call('mem__read_graph', {}))).length, 0, 'other members\' tools are not counted');
});

test('allowed responses carry the remaining budget', async () => {
  const p = await build(rateLimit, {
    limits: [
      { name: 'all', points: 10, duration: '1m' },
      { name: 'calls', points: 4, duration: '30s', match: { method: 'tools/call' } },
    ],
  });
  const x = exchange({ principal: principal('acme') });
  await p.onRequest!(x);
  await onRequestMessage(p, call('list_graphs'), x, batch);
  await onRequestMessage(p, call('list_graphs'), x, batch);
  const head: ResponseHead = { status: 200, headers: {} };
  await p.onResponse!(head, x);
  assert.equal(head.headers['ratelimit-policy'], '"all";q=10;w=60, "calls";q=4;w=30');
  assert.match(String(head.headers.ratelimit), /^"all";r=8;t=\d+, "calls";r=2;t=\d+$/);
  // An exchange that spent nothing (a GET stream) gets no headers.
  const g = exchange({ method: 'GET', principal: principal('acme') });
  await p.onRequest!(g);
  const h2: ResponseHead = { status: 200, headers: {} };
  await p.onResponse!(h2, g);
  assert.deepEqual(h2.headers, {});
});

test('keys: subject gives each user a budget; ip uses the socket address (or trusted X-Forwarded-For)', async () => {
  const bySubject = await build(rateLimit, { key: 'subject', limits: [{ name: 'u', points: 1, duration: '1m' }] });
  const a1 = exchange({ principal: principal('acme', { subject: 'alice' }) });
  const a2 = exchange({ principal: principal('acme', { subject: 'bob' }) });
  for (const x of [a1, a2]) {
    await bySubject.onRequest!(x);
    assert.equal(await onRequestMessage(bySubject, rpc('ping'), x), undefined);
  }
  assert.equal((await onRequestMessage(bySubject, rpc('ping'), a1))?.kind, 'reject');

  const byIp = await build(rateLimit, { key: 'ip', limits: [{ name: 'ip', points: 1, duration: '1m' }] });
  const i1 = exchange({ remoteAddress: '10.0.0.1' });
  const i2 = exchange({ remoteAddress: '10.0.0.2', headers: { 'x-forwarded-for': '10.0.0.1' } });
  for (const x of [i1, i2]) {
    assert.equal(await byIp.onRequest!(x), undefined, 'no principal needed');
    assert.equal(await onRequestMessage(byIp, rpc('ping'), x), undefined, 'X-Forwarded-For is ignored without trusted hops');
  }

  const behindProxy = await build(rateLimit, { key: 'ip', trustedProxyHops: 1, limits: [{ name: 'ip', points: 1, duration: '1m' }] });
  const p1 = exchange({ remoteAddress: '10.9.9.9', headers: { 'x-forwarded-for': 'forged, 192.0.2.7' } });
  const p2 = exchange({ remoteAddress: '10.9.9.9', headers: { 'x-forwarded-for': '192.0.2.8' } });
  for (const x of [p1, p2]) {
    await behindProxy.onRequest!(x);
    assert.equal(await onRequestMessage(behindProxy, rpc('ping'), x), undefined);
  }
  const p3 = exchange({ remoteAddress: '10.9.9.9', headers: { 'x-forwarded-for': 'other-forgery, 192.0.2.7' } });
  await behindProxy.onRequest!(p3);
  assert.equal((await onRequestMessage(behindProxy, rpc('ping'), p3))?.kind, 'reject');
});

test('a tenant-keyed limit without a principal refuses (fail closed)', async () => {
  const p = await build(rateLimit, {});
  const x = exchange();
  const v = await p.onRequest!(x);
  assert.equal(v && v.kind === 'respond' && v.code, 'GW_ERR_RATE_LIMIT_NO_PRINCIPAL');
  assert.equal((await onRequestMessage(p, rpc('ping'), x))?.kind, 'reject');
});

test('SSE stream cap per tenant, released when the stream ends', async () => {
  const p = await build(rateLimit, { maxStreams: 2 });
  const open = () => exchange({ method: 'GET', headers: { accept: 'text/event-stream' }, principal: principal('acme') });
  const s1 = open();
  const s2 = open();
  assert.equal(await p.onRequest!(s1), undefined);
  assert.equal(await p.onRequest!(s2), undefined);
  const s3 = open();
  const refused = await p.onRequest!(s3);
  assert.ok(refused && refused.kind === 'respond');
  assert.equal(refused.status, 429);
  assert.equal(refused.code, 'GW_ERR_TOO_MANY_STREAMS');
  p.onDone!(s3, outcome(429)); // a refused stream releases nothing
  // Another tenant is not affected, and POSTs are not streams.
  assert.equal(await p.onRequest!(exchange({ method: 'GET', headers: { accept: 'text/event-stream' }, principal: principal('globex') })), undefined);
  assert.equal(await p.onRequest!(exchange({ principal: principal('acme') })), undefined);
  p.onDone!(s1, outcome());
  p.onDone!(s1, outcome()); // twice releases once
  assert.equal(await p.onRequest!(open()), undefined);
  assert.equal((await p.onRequest!(open()) as { code?: string })?.code, 'GW_ERR_TOO_MANY_STREAMS');
});

test('in-flight tool call cap, per tenant, released by onDone', async () => {
  const p = await build(rateLimit, { maxInflightToolCalls: 2 });
  const x1 = exchange({ principal: principal('acme') });
  await p.onRequest!(x1);
  assert.equal(await onRequestMessage(p, call('query_graph'), x1, batch), undefined);
  assert.equal(await onRequestMessage(p, rpc('tools/list'), x1, batch), undefined, 'only tools/call counts');
  assert.equal(await onRequestMessage(p, call('query_graph'), x1, batch), undefined);
  const x2 = exchange({ principal: principal('acme') });
  await p.onRequest!(x2);
  const v = await onRequestMessage(p, call('query_graph'), x2);
  assert.equal(v?.kind === 'reject' && v.code, 'GW_ERR_TOO_MANY_INFLIGHT');
  assert.equal(v?.kind === 'reject' && v.httpStatus, 429);
  const other = exchange({ principal: principal('globex') });
  await p.onRequest!(other);
  assert.equal(await onRequestMessage(p, call('query_graph'), other), undefined);
  p.onDone!(x1, outcome());
  assert.equal(await onRequestMessage(p, call('query_graph'), x2), undefined);
  assert.equal(await onRequestMessage(p, call('query_graph'), x2), undefined);
});

test('store redis without redis.url is a load error', async () => {
  await assert.rejects(build(rateLimit, { store: 'redis' }), /redis\.url/);
});

test('Redis store: two gateway instances share one budget, exactly, under concurrency', async (t) => {
  const up = await redisAvailable();
  if (!up.ok) return t.skip(up.reason);
  const prefix = `mcpgw-test-${randomUUID()}:`;
  const clients = [new Redis({ host: '127.0.0.1', port: 6379 }), new Redis({ host: '127.0.0.1', port: 6379 })];
  try {
    await Promise.all(clients.map((c) => c.ping()));
    const config = { store: 'redis', limits: [{ name: 'shared', points: 20, duration: '1m' }] };
    const [a, b] = await Promise.all(clients.map((redis) => build(rateLimit, config, deps({ redis, redisKeyPrefix: prefix }))));
    const verdicts = (await Promise.all([burst(a, 25, 'acme'), burst(b, 25, 'acme')])).flat();
    assert.equal(verdicts.length - refusals(verdicts).length, 20);
    // The counter really lives in Redis, under the gateway's prefix.
    const keys = await clients[0].keys(`${prefix}*`);
    assert.deepEqual(keys, [`${prefix}rl:tenant-test:shared:t:acme`]);
    assert.equal(await clients[0].get(keys[0]), '50');
  } finally {
    const keys = await clients[0].keys(`${prefix}*`);
    if (keys.length) await clients[0].del(...keys);
    await Promise.all(clients.map((c) => c.quit()));
  }
});

test('Redis store failing: insurance limits in memory, closed refuses with 503, open lets through; all visible', async () => {
  const port = await freePort(); // nothing listens there: the client never becomes ready
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  redis.on('error', () => {});
  const warnings: unknown[] = [];
  const log = { ...deps().log, warn: (o: unknown) => { warnings.push(o); } } as never;
  const limits = [{ name: 'l', points: 4, duration: '1m' }];
  try {
    const insured = await build(rateLimit, { store: 'redis', limits, insuranceFraction: 0.5 }, deps({ redis, log }));
    const x = exchange({ principal: principal('acme') });
    await insured.onRequest!(x);
    const vs = [];
    for (let i = 0; i < 3; i++) vs.push(await onRequestMessage(insured, rpc('ping'), x));
    assert.deepEqual(vs.map((v) => v?.kind), [undefined, undefined, 'reject'], 'insurance: ceil(4 * 0.5) = 2');
    assert.match(String(x.get(RATE_LIMIT_DEGRADED)), /onStoreError: insurance/);
    assert.equal(warnings.length, 1, 'logged once per interval, not per request');
    assert.equal((warnings[0] as { code: string }).code, 'GW_ERR_RATE_LIMIT_STORE');

    const closed = await build(rateLimit, { store: 'redis', limits, onStoreError: 'closed' }, deps({ redis }));
    const y = exchange({ principal: principal('acme') });
    await closed.onRequest!(y);
    const v = await onRequestMessage(closed, rpc('ping'), y, json);
    assert.equal(v?.kind === 'reject' && v.code, 'GW_ERR_RATE_LIMIT_UNAVAILABLE');
    assert.equal(v?.kind === 'reject' && v.httpStatus, 503);

    const open = await build(rateLimit, { store: 'redis', limits, onStoreError: 'open' }, deps({ redis }));
    const z = exchange({ principal: principal('acme') });
    await open.onRequest!(z);
    for (let i = 0; i < 6; i++) assert.equal(await onRequestMessage(open, rpc('ping'), z), undefined);
    assert.match(String(z.get(RATE_LIMIT_DEGRADED)), /onStoreError: open/);
  } finally {
    redis.disconnect();
  }
});
