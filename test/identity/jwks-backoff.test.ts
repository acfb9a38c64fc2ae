/**
 * The jwt plugin against a JWKS endpoint that fails: a real local HTTP server counts every request,
 * and tokens naming unknown `kid`s must not turn into one fetch each. After a failed fetch the plugin
 * waits `cooldown` before asking again, as after a successful one; tokens in between get
 * 503 GW_ERR_AUTH_UNAVAILABLE (the IdP cannot be asked, so the token cannot be judged) at once.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Plugin, Verdict } from '../../gateway/contract.ts';
import jwtPlugin, { JwtConfigSchema } from '../../plugins/jwt/index.ts';
import tokenPlugin, { TokenConfigSchema } from '../../plugins/token.ts';
import { ISSUER, AUDIENCE, makeKey, sign, testDeps, testExchange, testRoute, type TestKey } from '../fixtures/identity/tokens.ts';

const route = testRoute('http://localhost:3001', '/mcp');
const tokens = await tokenPlugin.create(TokenConfigSchema.parse({ sources: ['header'] }), testDeps('/tmp', route));
const cleanup: Array<() => Promise<void> | void> = [];
after(async () => { for (const c of cleanup.reverse()) await c(); });

type Behaviour = 'jwks' | 'error500' | 'reset';

/** A JWKS endpoint whose behaviour the test switches; `requests` counts every fetch attempt. */
async function startIdp(keys: TestKey[]) {
  const state = { behaviour: 'jwks' as Behaviour, keys, requests: 0 };
  const sockets = new Set<Socket>();
  const server = http.createServer((_req, res) => {
    if (state.behaviour === 'error500') {
      res.writeHead(500, { 'content-type': 'text/plain' });
      return void res.end('identity provider is down');
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    // Dropped before a request can be read: the connection is the attempt.
    if (state.behaviour === 'reset') {
      state.requests++;
      s.destroy();
    }
  });
  server.on('request', () => { state.requests++; });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return { state, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks` };
}

async function build(jwksUrl: string, keys: Record<string, unknown> = {}): Promise<Plugin> {
  const p = await jwtPlugin.create(JwtConfigSchema.parse({
    keys: { jwksUrl, timeout: '2s', ...keys }, algorithms: ['ES256'], issuer: ISSUER, audience: AUDIENCE,
  }), testDeps('/tmp', route));
  cleanup.push(() => p.close?.());
  return p;
}

/** Runs token then jwt, as a route does; undefined means accepted. */
async function verdict(p: Plugin, token: string): Promise<Verdict | undefined> {
  const x = testExchange(route, '/mcp', { authorization: `Bearer ${token}` });
  return ((await tokens.onRequest!(x)) ?? (await p.onRequest!(x))) as Verdict | undefined;
}

function assertRefused(v: Verdict | undefined, status: number, code: string): void {
  assert.ok(v && v.kind === 'respond', `expected ${code}, got acceptance`);
  assert.equal(v.code, code);
  assert.equal(v.status, status);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('jwt plugin: JWKS endpoint failures back off', () => {
  for (const behaviour of ['error500', 'reset'] as const) {
    it(`an IdP that ${behaviour === 'error500' ? 'answers 500' : 'drops connections'} is asked once per cooldown, not once per unknown kid`, async () => {
      const signer = await makeKey('p256', 'never-published');
      const idp = await startIdp([]);
      idp.state.behaviour = behaviour;
      const p = await build(idp.url, { cooldown: '60s' }); // its first fetch (the warm-up) fails
      for (let i = 0; i < 50; i++) {
        const v = await verdict(p, await sign(signer, {}, { kid: `random-${i}` }));
        assertRefused(v, 503, 'GW_ERR_AUTH_UNAVAILABLE');
        assert.equal(v?.kind === 'respond' && v.headers?.['retry-after'], '5');
      }
      assert.equal(idp.state.requests, 1, `the IdP was asked ${idp.state.requests} times for 50 tokens`);
    });
  }

  it('with keys in hand: a known kid still verifies during the backoff, unknown kids wait for the next attempt', async () => {
    const [k1, k2] = await Promise.all([makeKey('p256', 'k1'), makeKey('p256', 'k2')]);
    const idp = await startIdp([k1]);
    // 1s cooldown: each burst below is a handful of local verifications, far shorter than that.
    const p = await build(idp.url, { cooldown: '1s' });
    assert.equal(await verdict(p, await sign(k1)), undefined, 'k1 verifies');
    assert.equal(idp.state.requests, 1);
    // Right after a successful fetch, an unknown kid is a plain 401 and costs no fetch.
    assertRefused(await verdict(p, await sign(k2)), 401, 'GW_ERR_TOKEN_SIGNATURE');
    assert.equal(idp.state.requests, 1);

    idp.state.behaviour = 'error500';
    await sleep(1_100); // past the cooldown: the next unknown kid may ask again
    assertRefused(await verdict(p, await sign(k2)), 503, 'GW_ERR_AUTH_UNAVAILABLE');
    assert.equal(idp.state.requests, 2, 'one attempt after the cooldown');
    for (let i = 0; i < 20; i++) {
      assertRefused(await verdict(p, await sign(k2, {}, { kid: `random-${i}` })), 503, 'GW_ERR_AUTH_UNAVAILABLE');
      assert.equal(await verdict(p, await sign(k1)), undefined, 'a token whose key is in the current set verifies');
    }
    assert.equal(idp.state.requests, 2, `the failing IdP was asked ${idp.state.requests} times`);

    // The IdP is back with a rotated set: once the backoff has passed, the new kid is fetched and verifies.
    idp.state.behaviour = 'jwks';
    idp.state.keys = [k2, k1];
    await sleep(1_100);
    assert.equal(await verdict(p, await sign(k2)), undefined, 'k2 verifies after the IdP recovered');
    assert.equal(idp.state.requests, 3);
  });
});
