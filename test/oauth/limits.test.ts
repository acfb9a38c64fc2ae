/**
 * Per-address limits on the authorization server's open endpoints (`authorization.limits`): past the
 * limit, registration, token and revocation answer 429 with Retry-After and an OAuth JSON error (never
 * JSON-RPC), the authorization request an error page; another address keeps its own budget.
 *
 * Every test client connects from its own loopback address (Linux routes all of 127/8 to lo, so a
 * socket can be bound to 127.0.0.x as its local address): that is the address the gateway counts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { SharedServices } from '../../gateway/contract.ts';
import { createEndpointLimiter, EndpointLimitsSchema, endpointLimiter } from '../../gateway/oauth/limits.ts';
import { RetryLater } from '../../gateway/oauth/retry-later.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { redisAvailable } from '../tenant/fixtures.ts';
import { startAuthGateway } from './as-helpers.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
let tg: TestGateway;
let base: string;
let clientId: string;

interface Answer { status: number; headers: http.IncomingHttpHeaders; text: string }

/** An HTTP request sent from `from` (a 127.0.0.x address). */
function send(from: string, url: string, opts: { method?: string; type?: string; body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: opts.method ?? 'GET', localAddress: from, agent: false,
      headers: opts.type ? { 'content-type': opts.type } : {},
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const register = (from: string) => send(from, `${base}/oauth/register`, {
  method: 'POST', type: 'application/json', body: JSON.stringify({ redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' }),
});
const form = (from: string, path: string, fields: Record<string, string>) => send(from, `${base}${path}`, {
  method: 'POST', type: 'application/x-www-form-urlencoded', body: new URLSearchParams(fields).toString(),
});
function authorizeUrl(): string {
  const url = new URL('/oauth/authorize', base);
  for (const [k, v] of Object.entries({ response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, code_challenge: 'c'.repeat(43), code_challenge_method: 'S256', state: 's' })) url.searchParams.set(k, v);
  return url.href;
}

/** A 429 with Retry-After (whole seconds, within the window) and an RFC 6749 error body. */
function assertJsonRefusal(res: Answer, what: string): void {
  assert.equal(res.status, 429, res.text);
  const retry = Number(res.headers['retry-after']);
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 3600, `Retry-After ${res.headers['retry-after']}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  assert.equal(res.headers['cache-control'], 'no-store');
  const body = JSON.parse(res.text) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body).sort(), ['error', 'error_description'], 'an OAuth error, not JSON-RPC');
  assert.equal(body.error, 'temporarily_unavailable');
  assert.equal(body.error_description, `too many ${what} from this address; retry in ${retry} s`);
}

before(async () => {
  tg = await startAuthGateway(`  limits:
    register: { requests: 2, window: 1h }
    authorize: { requests: 2, window: 1h }
    token: { requests: 2, window: 1h }
    revoke: { requests: 1, window: 1h }
`);
  base = tg.url('main');
  const reg = await register('127.0.0.9');
  assert.equal(reg.status, 201, reg.text);
  clientId = (JSON.parse(reg.text) as { client_id: string }).client_id;
});
after(async () => { await tg?.close(); });

describe('per-address limits over HTTP', () => {
  it('/oauth/register: past the limit 429 with Retry-After and an OAuth JSON error; another address still registers', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await register('127.0.0.2')).status, 201);
    assertJsonRefusal(await register('127.0.0.2'), 'client registrations');
    assert.equal((await register('127.0.0.3')).status, 201, 'another address has its own budget');
  });

  it('GET /oauth/authorize (and /oauth/oidc, same budget): past the limit an error page with 429 and Retry-After', async () => {
    assert.equal((await send('127.0.0.4', authorizeUrl())).status, 200, 'the login page');
    assert.equal((await send('127.0.0.4', authorizeUrl())).status, 200);
    const refused = await send('127.0.0.4', authorizeUrl());
    assert.equal(refused.status, 429);
    assert.match(String(refused.headers['content-type']), /^text\/html/);
    const retry = Number(refused.headers['retry-after']);
    assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 3600, `Retry-After ${refused.headers['retry-after']}`);
    assert.match(refused.text, new RegExp(`too many sign-in requests from this address; retry in ${retry} s`));
    assert.doesNotMatch(refused.text, /jsonrpc/);
    const oidc = await send('127.0.0.4', `${base}/oauth/oidc?request_id=x`);
    assert.equal(oidc.status, 429, 'the step to the OpenID Connect provider counts against the same budget');
    assert.match(String(oidc.headers['content-type']), /^text\/html/);
    assert.equal((await send('127.0.0.5', authorizeUrl())).status, 200, 'another address still gets the login page');
  });

  it('/oauth/token and /oauth/revoke: past the limit 429 with an OAuth JSON error', async () => {
    const grant = { grant_type: 'refresh_token', refresh_token: 'nope', client_id: clientId };
    for (let i = 0; i < 2; i++) assert.equal((await form('127.0.0.6', '/oauth/token', grant)).status, 400, 'counted, then answered as usual');
    assertJsonRefusal(await form('127.0.0.6', '/oauth/token', grant), 'token requests');
    assert.equal((await form('127.0.0.7', '/oauth/token', grant)).status, 400, 'another address is not refused');

    const revoke = { token: 'nope', client_id: clientId };
    assert.equal((await form('127.0.0.6', '/oauth/revoke', revoke)).status, 200);
    assertJsonRefusal(await form('127.0.0.6', '/oauth/revoke', revoke), 'revocation requests');
  });
});

const from = (remoteAddress: string) => ({ socket: { remoteAddress } }) as unknown as IncomingMessage;

describe('the limiter', () => {
  const cfg = EndpointLimitsSchema.parse({ register: { requests: 1, window: '1m' } });

  it('counts IPv6 addresses per /64 and IPv4-mapped addresses as IPv4', async () => {
    const limits = createEndpointLimiter(cfg, { keyPrefix: 'test:' });
    await limits.check('register', from('2001:db8:1:2::1'));
    await assert.rejects(limits.check('register', from('2001:db8:1:2:ffff::9')), (err) => err instanceof RetryLater && err.status === 429);
    await limits.check('register', from('2001:db8:1:3::1'));
    await limits.check('register', from('::ffff:192.0.2.1'));
    await assert.rejects(limits.check('register', from('192.0.2.1')), RetryLater);
  });

  it('keeps one budget per endpoint, and generous defaults', async () => {
    const limits = createEndpointLimiter(cfg, { keyPrefix: 'test:' });
    await limits.check('register', from('192.0.2.2'));
    await limits.check('token', from('192.0.2.2'));
    const defaults = EndpointLimitsSchema.parse(undefined);
    assert.deepEqual(defaults.register, { requests: 60, window: 3_600_000 });
    assert.deepEqual(defaults.authorize, { requests: 60, window: 60_000 });
    assert.ok(defaults.token.requests >= 120);
  });
});

const redis = await redisAvailable();
describe('the limiter with store: redis', { skip: redis.ok ? false : redis.reason }, () => {
  it('counts in Redis under <keyPrefix>oauth:limit:, shared by every replica', async () => {
    const { Redis } = await import('ioredis');
    const client = new Redis({ host: '127.0.0.1', port: 6379 });
    const prefix = `mcpgw-test-${process.pid}-${Date.now()}:`;
    try {
      await client.ping(); // connected: until then the limiter counts in memory (insurance)
      const cfg = EndpointLimitsSchema.parse({ register: { requests: 1, window: '1m' } });
      const replica = (n: number) => endpointLimiter(cfg, 'redis', { redis: client, redisKeyPrefix: prefix, n } as unknown as SharedServices);
      await replica(1).check('register', from('192.0.2.3'));
      await assert.rejects(replica(2).check('register', from('192.0.2.3')), RetryLater, 'another replica sees the count');
      assert.deepEqual(await client.keys(`${prefix}*`), [`${prefix}oauth:limit:register:192.0.2.3`]);
      await client.del(`${prefix}oauth:limit:register:192.0.2.3`);
    } finally {
      client.disconnect();
    }
  });
});
