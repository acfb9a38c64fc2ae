/**
 * Identity end to end: the real gateway, the SDK client on both transports and both kinds of listener,
 * server-everything behind a recording forwarder (to prove no credential reaches the upstream), and every
 * refusal with its status, challenge and code.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startRecordingUpstream, type RecordingUpstream } from '../fixtures/identity/recording-upstream.ts';
import { ISSUER, hsSignedWithPublicKey, makeKey, sign, tamper, unsignedToken, type TestKey } from '../fixtures/identity/tokens.ts';

const AUD = 'mcp-gateway-test';
// Routes with an authorization server serve RFC 9728 metadata and point challenges at it; url /mcp has none.
const AS = `
        authorizationServers: ["https://issuer.test"]`;

let everything: RunningUpstream;
let legacy: RunningUpstream;
let recStreamable: RecordingUpstream;
let recLegacy: RecordingUpstream;
let tg: TestGateway;
let rsa: TestKey;
let ed: TestKey;

const jwt = (extra = '') => `
      - type: jwt
        keys: { jwksFile: jwks.json }
        # HS256 is listed on purpose: the RSA key must still never verify an HS256 token.
        algorithms: [RS256, EdDSA, HS256]
        issuer: "${ISSUER}"
        audience: ${AUD}
        clockTolerance: 0s
        streamGrace: 0s
        revocation: { file: revoked.txt, interval: 100ms }${extra}`;

before(async () => {
  [everything, legacy, rsa, ed] = await Promise.all([startEverything('streamableHttp'), startEverything('sse'), makeKey('rsa', 'rsa-1'), makeKey('ed25519', 'ed-1')]);
  [recStreamable, recLegacy] = await Promise.all([startRecordingUpstream(everything.url), startRecordingUpstream(legacy.url)]);
  tg = await startTestGateway(`
listeners:
  - { name: header, port: 0 }
  - { name: url, port: 0 }
upstreams:
  everything: { url: "${recStreamable.url}/mcp" }
  legacy: { url: "${recLegacy.url}" }
routes:
  - listener: header
    path: /mcp
    upstream: everything
    plugins:
      - { type: token, sources: [header] }${jwt(AS)}
  - listener: header
    path: /scoped
    upstream: everything
    plugins:
      - { type: token, sources: [header] }${jwt(`${AS}
        requiredScopes: [tools:call]`)}
  - listener: url
    path: /mcp
    upstream: everything
    plugins:
      - { type: token, sources: [header, query] }${jwt()}
  - listener: url
    path: /legacy
    upstream: legacy
    plugins:
      - { type: token, sources: [header, query] }${jwt(AS)}
`, { files: { 'jwks.json': JSON.stringify({ keys: [rsa.jwk, ed.jwk] }), 'revoked.txt': '' } });
});

after(async () => {
  await tg?.close();
  await Promise.all([recStreamable?.close(), recLegacy?.close()]);
  await Promise.all([everything?.close(), legacy?.close()]);
});

async function useClient(url: string, opts: Parameters<typeof connectClient>[1], fn: (c: Client) => Promise<void>) {
  const client = await connectClient(url, opts);
  try {
    await fn(client);
  } finally {
    await client.close();
  }
}

async function echo(c: Client, text: string) {
  const r = await c.callTool({ name: 'echo', arguments: { message: text } });
  assert.match(JSON.stringify(r.content), new RegExp(text));
}

const INITIALIZE = JSON.stringify({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
});

async function post(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: INITIALIZE,
  });
  const text = await res.text();
  let code: unknown;
  try { code = JSON.parse(text).error?.data?.code; } catch { /* not JSON */ }
  return { status: res.status, challenge: res.headers.get('www-authenticate') ?? '', code };
}

function assertChallenge(challenge: string, listenerUrl: string, routePath: string, error: string) {
  assert.match(challenge, /^Bearer /);
  assert.ok(challenge.includes(`resource_metadata="${listenerUrl}/.well-known/oauth-protected-resource${routePath}"`), challenge);
  assert.ok(challenge.includes(`error="${error}"`), challenge);
  assert.match(challenge, /error_description="[^"]+"/);
}

describe('identity: accepted', () => {
  it('a header token on the header listener (Streamable HTTP); the upstream never sees it', async () => {
    const token = await sign(rsa, { aud: AUD });
    const before = recStreamable.requests.length;
    await useClient(`${tg.url('header')}/mcp`, { bearer: token }, async (c) => {
      assert.ok((await c.listTools()).tools.some((t) => t.name === 'echo'));
      await echo(c, 'hello-header');
    });
    const seen = recStreamable.requests.slice(before);
    assert.ok(seen.length >= 3);
    for (const r of seen) assert.equal(r.headers.authorization, undefined);
    assert.ok(!recStreamable.text().includes(token));
    assert.ok(!tg.logText().includes(token), 'the token is never logged');
  });

  it('a header token on legacy SSE', async () => {
    const token = await sign(ed, { aud: AUD });
    await useClient(`${tg.url('url')}/legacy/sse`, { bearer: token, transport: 'sse' }, async (c) => { await echo(c, 'hello-legacy-header'); });
    assert.ok(!recLegacy.text().includes(token));
  });

  it('a URL token (Streamable HTTP): absent from everything the upstream receives and from the logs', async () => {
    const token = await sign(ed, { aud: AUD, jti: 'url-token-streamable' });
    const before = recStreamable.requests.length;
    await useClient(`${tg.url('url')}/mcp?token=${token}`, {}, async (c) => { await echo(c, 'hello-url'); });
    const seen = recStreamable.requests.slice(before);
    assert.ok(seen.length >= 3);
    for (const r of seen) assert.ok(!r.url.includes('token='), r.url);
    assert.ok(!recStreamable.text().includes(token));
    assert.ok(!tg.logText().includes(token));
    assert.ok(!tg.logText().includes(token.split('.')[2]), 'not even the signature part');
  });

  it('a URL token on legacy SSE: the follow-up POSTs are authenticated, and the token never goes upstream', async () => {
    const token = await sign(rsa, { aud: AUD });
    const before = recLegacy.requests.length;
    await useClient(`${tg.url('url')}/legacy/sse?token=${token}`, { transport: 'sse' }, async (c) => {
      await echo(c, 'hello-legacy-url');
      await echo(c, 'again');
    });
    const seen = recLegacy.requests.slice(before);
    assert.ok(seen.some((r) => r.method === 'POST'), 'POSTs reached the upstream');
    assert.ok(!recLegacy.text().includes(token));
    assert.ok(!tg.logText().includes(token));
  });
});

describe('identity: refused', () => {
  const cases: Array<[string, () => Promise<Record<string, string>>, string, string]> = [
    ['no token', async () => ({}), 'GW_ERR_TOKEN_MISSING', 'invalid_request'],
    ['another scheme', async () => ({ authorization: 'Basic YWxpY2U6cHc=' }), 'GW_ERR_TOKEN_MALFORMED', 'invalid_request'],
    ['not a JWT', async () => ({ authorization: 'Bearer hello' }), 'GW_ERR_TOKEN_MALFORMED', 'invalid_request'],
    ['bad signature', async () => ({ authorization: `Bearer ${tamper(await sign(rsa, { aud: AUD }))}` }), 'GW_ERR_TOKEN_SIGNATURE', 'invalid_token'],
    ['alg none', async () => ({ authorization: `Bearer ${unsignedToken()}` }), 'GW_ERR_TOKEN_ALGORITHM', 'invalid_token'],
    ['HS256 signed with the RSA public key', async () => ({ authorization: `Bearer ${hsSignedWithPublicKey(rsa)}` }), 'GW_ERR_TOKEN_ALGORITHM', 'invalid_token'],
    ['wrong issuer', async () => ({ authorization: `Bearer ${await sign(rsa, { aud: AUD, iss: 'https://other.test' })}` }), 'GW_ERR_TOKEN_ISSUER', 'invalid_token'],
    ['wrong audience', async () => ({ authorization: `Bearer ${await sign(rsa, { aud: 'http://elsewhere/mcp' })}` }), 'GW_ERR_TOKEN_AUDIENCE', 'invalid_token'],
    ['expired', async () => ({ authorization: `Bearer ${await sign(rsa, { aud: AUD }, { expSeconds: -5 })}` }), 'GW_ERR_TOKEN_EXPIRED', 'invalid_token'],
    ['not yet valid', async () => ({ authorization: `Bearer ${await sign(rsa, { aud: AUD, nbf: Math.floor(Date.now() / 1000) + 120 })}` }), 'GW_ERR_TOKEN_NOT_YET_VALID', 'invalid_token'],
    ['missing tenant claim', async () => ({ authorization: `Bearer ${await sign(ed, { aud: AUD, tenant_id: undefined })}` }), 'GW_ERR_TENANT_MISSING', 'invalid_token'],
    ['tenant with forbidden characters', async () => ({ authorization: `Bearer ${await sign(ed, { aud: AUD, tenant_id: 'acme_b' })}` }), 'GW_ERR_TENANT_INVALID', 'invalid_token'],
  ];
  for (const [name, headers, code, error] of cases) {
    it(`${name}: 401 ${code}`, async () => {
      const r = await post(`${tg.url('header')}/mcp`, await headers());
      assert.equal(r.status, 401);
      assert.equal(r.code, code);
      assertChallenge(r.challenge, tg.url('header'), '/mcp', error);
    });
  }

  it('without authorization servers the challenge names no metadata and says how to get a token', async () => {
    const r = await post(`${tg.url('url')}/mcp`);
    assert.equal(r.status, 401);
    assert.equal(r.code, 'GW_ERR_TOKEN_MISSING');
    assert.match(r.challenge, /^Bearer error="invalid_request", error_description=".*identity provider that issues for this gateway.*"$/);
    assert.ok(!r.challenge.includes('resource_metadata'), r.challenge);
  });

  it('a URL token on the header-only listener: 401 GW_ERR_TOKEN_SOURCE, and the token stays out of the logs', async () => {
    const token = await sign(rsa, { aud: AUD });
    const r = await post(`${tg.url('header')}/mcp?token=${token}`);
    assert.equal(r.status, 401);
    assert.equal(r.code, 'GW_ERR_TOKEN_SOURCE');
    assert.ok(!tg.logText().includes(token));
  });

  it('missing scope: 403 GW_ERR_INSUFFICIENT_SCOPE with error="insufficient_scope" and the scope needed', async () => {
    const r = await post(`${tg.url('header')}/scoped`, { authorization: `Bearer ${await sign(rsa, { aud: AUD, scope: 'tools:read' })}` });
    assert.equal(r.status, 403);
    assert.equal(r.code, 'GW_ERR_INSUFFICIENT_SCOPE');
    assertChallenge(r.challenge, tg.url('header'), '/scoped', 'insufficient_scope');
    assert.ok(r.challenge.includes('scope="tools:call"'));
    const ok = await sign(rsa, { aud: AUD, scope: 'tools:read tools:call' });
    await useClient(`${tg.url('header')}/scoped`, { bearer: ok }, async (c) => { await echo(c, 'scoped'); });
  });

  it('a jti revoked while the gateway runs is refused without a restart, mid-session', async () => {
    const token = await sign(rsa, { aud: AUD, jti: 'revoke-me' });
    await useClient(`${tg.url('header')}/mcp`, { bearer: token }, async (c) => {
      await echo(c, 'before-revocation');
      await appendFile(path.join(tg.dir, 'revoked.txt'), 'revoke-me\n');
      const deadline = Date.now() + 5_000;
      let refused: unknown;
      while (Date.now() < deadline && !refused) {
        try {
          await echo(c, 'after-revocation');
          await new Promise((r) => setTimeout(r, 100));
        } catch (err) {
          refused = err;
        }
      }
      assert.ok(refused, 'the session stopped working');
    });
    const r = await post(`${tg.url('header')}/mcp`, { authorization: `Bearer ${token}` });
    assert.equal(r.status, 401);
    assert.equal(r.code, 'GW_ERR_TOKEN_REVOKED');
  });

  it('ends an SSE stream when its token expires (STREAM_DEADLINE)', async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const token = await sign(rsa, { aud: AUD, exp });
    const res = await fetch(`${tg.url('url')}/legacy/sse`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const giveUp = setTimeout(() => reader.cancel(), 10_000);
    try {
      while (!(await reader.read()).done) { /* drain until the gateway ends it */ }
    } catch { /* a reset is an end too */ }
    clearTimeout(giveUp);
    const endedAt = Date.now();
    assert.ok(endedAt >= exp * 1000 - 50, 'not before exp');
    assert.ok(endedAt < exp * 1000 + 5_000, `ended ${endedAt - exp * 1000}ms after exp`);
  });
});

describe('identity: discovery', () => {
  it('serves RFC 9728 metadata per route and at the bare address, advertising only the header', async () => {
    for (const [listener, route] of [['header', '/mcp'], ['url', '/legacy']] as const) {
      const base = tg.url(listener);
      const res = await fetch(`${base}/.well-known/oauth-protected-resource${route}`);
      assert.equal(res.status, 200);
      const doc = await res.json() as Record<string, unknown>;
      assert.equal(doc.resource, `${base}${route}`);
      assert.deepEqual(doc.bearer_methods_supported, ['header']);
    }
    const bare = await fetch(`${tg.url('header')}/.well-known/oauth-protected-resource`);
    assert.equal(bare.status, 200);
  });

  it('serves no metadata for a route without an authorization server (the MCP spec requires one)', async () => {
    const res = await fetch(`${tg.url('url')}/.well-known/oauth-protected-resource/mcp`);
    assert.equal(res.status, 404);
    const doc = await res.json() as Record<string, unknown>;
    assert.equal(doc.resource, undefined);
    assert.match(String(doc.error_description), /no OAuth authorization server/);
  });
});

describe('identity: JWKS rotation', () => {
  it('picks up a new kid from the JWKS endpoint without a restart, and unknown kids cannot hammer it', async () => {
    const [k1, k2] = await Promise.all([makeKey('p256', 'rot-1'), makeKey('p256', 'rot-2')]);
    let jwks = { keys: [k1.jwk] };
    let fetches = 0;
    const idp = http.createServer((req, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const idpUrl = `http://127.0.0.1:${(idp.address() as AddressInfo).port}/jwks`;
    const gw = await startTestGateway(`
listeners:
  - { name: header, port: 0 }
upstreams:
  everything: { url: "${everything.url}/mcp" }
routes:
  - listener: header
    path: /mcp
    upstream: everything
    plugins:
      - { type: token }
      - type: jwt
        keys: { jwksUrl: "${idpUrl}", cooldown: 1s, cacheMaxAge: 10m }
        algorithms: [ES256]
        issuer: "${ISSUER}"
        audience: ${AUD}
`);
    try {
      const url = `${gw.url('header')}/mcp`;
      await useClient(url, { bearer: await sign(k1, { aud: AUD }) }, async (c) => { await echo(c, 'rot-1'); });
      const rotated = await sign(k2, { aud: AUD });
      const burst = await Promise.all(Array.from({ length: 10 }, () => post(url, { authorization: `Bearer ${rotated}` })));
      for (const r of burst) assert.equal(r.code, 'GW_ERR_TOKEN_SIGNATURE');
      assert.ok(fetches <= 2, `the IdP was fetched ${fetches} times`);
      jwks = { keys: [k2.jwk, k1.jwk] };
      await new Promise((r) => setTimeout(r, 1_100)); // past the cooldown
      await useClient(url, { bearer: rotated }, async (c) => { await echo(c, 'rot-2'); });
    } finally {
      await gw.close();
      idp.closeAllConnections();
      await new Promise<void>((r) => idp.close(() => r()));
    }
  });

  it('answers 503 GW_ERR_AUTH_UNAVAILABLE, not 401, when the IdP cannot be reached', async () => {
    const key = await makeKey('p256', 'down-1');
    const gw = await startTestGateway(`
listeners:
  - { name: header, port: 0 }
upstreams:
  everything: { url: "${everything.url}/mcp" }
routes:
  - listener: header
    path: /mcp
    upstream: everything
    plugins:
      - { type: token }
      - { type: jwt, keys: { jwksUrl: "http://127.0.0.1:9/jwks", timeout: 500ms }, algorithms: [ES256], issuer: "${ISSUER}", audience: ${AUD} }
`);
    try {
      const r = await post(`${gw.url('header')}/mcp`, { authorization: `Bearer ${await sign(key, { aud: AUD })}` });
      assert.equal(r.status, 503);
      assert.equal(r.code, 'GW_ERR_AUTH_UNAVAILABLE');
    } finally {
      await gw.close();
    }
  });
});

