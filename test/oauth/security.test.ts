/**
 * The authorization server's refusals: PKCE missing, plain or wrong; a code used twice (and the tokens
 * from it revoked); redirect-URI mismatch (an error page, never a redirect); state passed back; CSRF;
 * the tenant taken from the account whatever the client asks; errors as OAuth JSON, never JSON-RPC.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { TestGateway } from '../helpers/gateway.ts';
import { Browser, hidden, PASSWORD, signIn, startAuthGateway } from './as-helpers.ts';

const REDIRECT = 'http://127.0.0.1:9/cb';
let tg: TestGateway;
let base: string;
let resource: string;
let clientId: string;

before(async () => {
  tg = await startAuthGateway();
  base = tg.url('main');
  resource = `${base}/mcp`;
  const reg = await fetch(`${base}/oauth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: 'security test', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none' }),
  });
  assert.equal(reg.status, 201);
  clientId = ((await reg.json()) as { client_id: string }).client_id;
});
after(async () => { await tg?.close(); });

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function authorizeUrl(params: Record<string, string | undefined>): string {
  const url = new URL('/oauth/authorize', base);
  const all: Record<string, string | undefined> = { response_type: 'code', client_id: clientId, redirect_uri: REDIRECT, resource, scope: 'mcp:tools', state: 'xyz', ...params };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) url.searchParams.set(k, v);
  return url.href;
}

async function token(fields: Record<string, string>): Promise<Response> {
  return fetch(`${base}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
}

async function codeFor(extra: Record<string, string> = {}, username = 'alice'): Promise<{ code: string; verifier: string }> {
  const { verifier, challenge } = pkce();
  const back = await signIn(authorizeUrl({ code_challenge: challenge, code_challenge_method: 'S256', ...extra }), { username });
  const code = back.searchParams.get('code');
  assert.ok(code, `a code, not ${back.href}`);
  return { code, verifier };
}

function redeem(code: string, verifier: string): Promise<Response> {
  return token({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: clientId, resource });
}

async function mcpStatus(accessToken: string): Promise<number> {
  const res = await fetch(resource, {
    method: 'POST',
    headers: { authorization: `Bearer ${accessToken}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  await res.body?.cancel();
  return res.status;
}

describe('PKCE', () => {
  it('a request without code_challenge goes back to the client as invalid_request, with state and iss', async () => {
    const back = await signIn(authorizeUrl({}));
    assert.equal(back.searchParams.get('error'), 'invalid_request');
    assert.equal(back.searchParams.get('state'), 'xyz');
    assert.equal(back.searchParams.get('iss'), base);
    assert.equal(back.searchParams.get('code'), null);
  });

  it('the plain method is refused', async () => {
    const back = await signIn(authorizeUrl({ code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }));
    assert.equal(back.searchParams.get('error'), 'invalid_request');
  });

  it('a wrong or missing verifier gets no token, and the code is spent', async () => {
    const { code, verifier } = await codeFor();
    const missing = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: clientId });
    assert.equal(missing.status, 400);
    assert.equal(((await missing.json()) as { error: string }).error, 'invalid_request');
    const wrong = await redeem(code, pkce().verifier);
    assert.equal(wrong.status, 400);
    assert.equal(((await wrong.json()) as { error: string }).error, 'invalid_grant');
    const late = await redeem(code, verifier);
    assert.equal(late.status, 400, 'a code tried with a wrong verifier cannot be used any more');
  });
});

describe('codes', () => {
  it('a code used twice is refused, and the tokens issued from it are revoked', async () => {
    const { code, verifier } = await codeFor();
    const first = await redeem(code, verifier);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('cache-control'), 'no-store');
    const tokens = (await first.json()) as { access_token: string; refresh_token: string };
    assert.notEqual(await mcpStatus(tokens.access_token), 401, 'accepted before the reuse');
    const second = await redeem(code, verifier);
    assert.equal(second.status, 400);
    assert.equal(((await second.json()) as { error: string }).error, 'invalid_grant');
    assert.equal(await mcpStatus(tokens.access_token), 401, 'the access token from the reused code is revoked');
    const refreshed = await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, client_id: clientId });
    assert.equal(refreshed.status, 400, 'and its refresh token');
  });

  it('a code redeemed with another redirect_uri is refused', async () => {
    const { code, verifier } = await codeFor();
    const res = await token({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: 'http://127.0.0.1:9/other', client_id: clientId });
    assert.equal(res.status, 400);
  });
});

describe('redirect URIs and clients', () => {
  it('an unregistered redirect_uri is an error page, never a redirect', async () => {
    const { challenge } = pkce();
    const res = await fetch(authorizeUrl({ redirect_uri: 'https://evil.example/cb', code_challenge: challenge, code_challenge_method: 'S256' }), { redirect: 'manual' });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.doesNotMatch(await res.text(), /evil\.example/, 'the page does not offer a link there either');
  });

  it('an unknown client is an error page', async () => {
    const res = await fetch(authorizeUrl({ client_id: 'no-such-client' }), { redirect: 'manual' });
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('location'), null);
  });

  it('a resource this server does not issue for goes back as invalid_target', async () => {
    const { challenge } = pkce();
    const back = await signIn(authorizeUrl({ resource: 'https://other.example/mcp', code_challenge: challenge, code_challenge_method: 'S256' }));
    assert.equal(back.searchParams.get('error'), 'invalid_target');
  });

  it('deny sends access_denied back with state', async () => {
    const { challenge } = pkce();
    const back = await signIn(authorizeUrl({ code_challenge: challenge, code_challenge_method: 'S256' }), { decision: 'deny' });
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('state'), 'xyz');
  });
});

describe('CSRF', () => {
  it('a login form without the cookie, or with a wrong token, signs nobody in', async () => {
    const { challenge } = pkce();
    const browser = new Browser();
    const page = await (await browser.fetch(authorizeUrl({ code_challenge: challenge, code_challenge_method: 'S256' }))).text();
    const requestId = hidden(page, 'request_id');
    const csrf = hidden(page, 'csrf');
    const fields = { request_id: requestId, csrf, username: 'alice', password: PASSWORD };
    const noCookie = await new Browser().post(`${base}/oauth/login`, fields);
    assert.equal(noCookie.status, 400);
    assert.doesNotMatch(await noCookie.text(), /decision/);
    const wrong = await browser.post(`${base}/oauth/login`, { ...fields, csrf: 'x'.repeat(43) });
    assert.equal(wrong.status, 400);
    const missing = await browser.post(`${base}/oauth/login`, { request_id: requestId, username: 'alice', password: PASSWORD });
    assert.equal(missing.status, 400);
    const right = await browser.post(`${base}/oauth/login`, fields);
    assert.equal(right.status, 200, 'the same browser with its cookie and token still can');
  });

  it('a wrong password shows the login page again, without signing in', async () => {
    const { challenge } = pkce();
    const browser = new Browser();
    const page = await (await browser.fetch(authorizeUrl({ code_challenge: challenge, code_challenge_method: 'S256' }))).text();
    const res = await browser.post(`${base}/oauth/login`, { request_id: hidden(page, 'request_id'), csrf: hidden(page, 'csrf'), username: 'alice', password: 'nope' });
    assert.equal(res.status, 401);
    assert.doesNotMatch(await res.text(), /name="decision"/);
  });
});

describe('tenant', () => {
  it('comes from the account, whatever the client asks', async () => {
    const { code, verifier } = await codeFor({ tenant: 'globex', tenant_id: 'globex', scope: 'mcp:tools tenant:globex tenant_id:globex' });
    const res = await redeem(code, verifier);
    const { access_token, scope } = (await res.json()) as { access_token: string; scope: string };
    const claims = decodeJwt(access_token);
    assert.equal(claims.tenant_id, 'acme');
    assert.equal(scope, 'mcp:tools', 'scopes the account does not have are not granted');
  });
});

describe('errors are OAuth JSON, never JSON-RPC', () => {
  it('on the token, revocation and registration endpoints', async () => {
    const cases: Array<[string, RequestInit, number, string]> = [
      ['/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=authorization_code&code=x' }, 401, 'invalid_client'],
      ['/oauth/token', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }, 400, 'invalid_request'],
      ['/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=password&client_id=${clientId}` }, 400, 'unsupported_grant_type'],
      ['/oauth/token', { method: 'GET' }, 405, 'invalid_request'],
      ['/oauth/token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('%zz:%').toString('base64')}` }, body: 'grant_type=authorization_code&code=x' }, 401, 'invalid_client'],
      ['/oauth/register', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"redirect_uris":["http://evil.example/cb"]}' }, 400, 'invalid_redirect_uri'],
      ['/oauth/revoke', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `client_id=${clientId}` }, 400, 'invalid_request'],
      ['/oauth/nothing', { method: 'GET' }, 404, 'invalid_request'],
    ];
    for (const [p, init, status, error] of cases) {
      const res = await fetch(base + p, init);
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(res.status, status, `${p} ${JSON.stringify(body)}`);
      assert.equal(body.error, error, p);
      assert.equal(body.jsonrpc, undefined, p);
      assert.equal(res.headers.get('cache-control'), 'no-store', p);
    }
  });

  it('metadata names the endpoints, S256 only, iss support; the protected resource names this server', async () => {
    const meta = (await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(meta.issuer, base);
    assert.deepEqual(meta.code_challenge_methods_supported, ['S256']);
    assert.equal(meta.authorization_response_iss_parameter_supported, true);
    assert.equal(meta.token_endpoint, `${base}/oauth/token`);
    const prm = (await (await fetch(`${base}/.well-known/oauth-protected-resource/mcp`)).json()) as Record<string, unknown>;
    assert.deepEqual(prm.authorization_servers, [base]);
    assert.equal(prm.resource, resource);
    const pre = await fetch(`${base}/oauth/token`, { method: 'OPTIONS', headers: { origin: 'https://inspector.example', 'access-control-request-method': 'POST' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  });
});
