/**
 * The token plugin on its own: where credentials may come from, what it refuses, and that a URL token
 * leaves the URL.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BEARER_TOKEN, URL_TOKEN, type Plugin, type Verdict } from '../../gateway/contract.ts';
import tokenPlugin, { TokenConfigSchema } from '../../plugins/token.ts';
import { testDeps, testExchange, testRoute } from '../fixtures/identity/tokens.ts';

const route = testRoute('http://gw.test:3003', '/mcp');

async function plugin(options: Record<string, unknown>): Promise<Plugin> {
  return tokenPlugin.create(TokenConfigSchema.parse(options), testDeps('/tmp', route));
}

function refusal(v: Verdict | void): Extract<Verdict, { kind: 'respond' }> {
  assert.ok(v && v.kind === 'respond', 'expected a refusal');
  return v;
}

describe('token plugin', () => {
  it('takes the token from Authorization: Bearer', async () => {
    const p = await plugin({});
    const x = testExchange(route, '/mcp', { authorization: 'Bearer abc.def.ghi' });
    assert.equal(await p.onRequest!(x), undefined);
    assert.equal(x.get(BEARER_TOKEN), 'abc.def.ghi');
    assert.equal(x.get(URL_TOKEN), undefined);
  });

  it('refuses a request without a token: 401, GW_ERR_TOKEN_MISSING, a Bearer challenge (no metadata: no jwt registered any)', async () => {
    const p = await plugin({});
    const v = refusal(await p.onRequest!(testExchange(route, '/mcp')));
    assert.equal(v.status, 401);
    assert.equal(v.code, 'GW_ERR_TOKEN_MISSING');
    assert.match(v.headers!['www-authenticate'], /^Bearer error="invalid_request", error_description="[^"]+"$/);
  });

  it('refuses other schemes and characters a bearer token cannot hold as GW_ERR_TOKEN_MALFORMED', async () => {
    const p = await plugin({});
    for (const authorization of ['Basic YWxpY2U6c2VjcmV0', 'Bearer ', 'Bearer a b', 'Bearer tok"en', 'Bearer ' + 'a'.repeat(9000)]) {
      const v = refusal(await p.onRequest!(testExchange(route, '/mcp', { authorization })));
      assert.equal(v.status, 401, authorization);
      assert.equal(v.code, 'GW_ERR_TOKEN_MALFORMED', authorization);
      assert.match(v.headers!['www-authenticate'], /^Bearer error="invalid_request"/);
    }
  });

  it('takes a query token only where allowed, and always removes it from the URL', async () => {
    const both = await plugin({ sources: ['header', 'query'] });
    const x = testExchange(route, '/mcp?sessionId=s1&token=abc.def.ghi');
    const urlObject = x.url;
    assert.equal(await both.onRequest!(x), undefined);
    assert.equal(x.get(BEARER_TOKEN), 'abc.def.ghi');
    assert.deepEqual(x.get(URL_TOKEN), { param: 'token', value: 'abc.def.ghi' });
    assert.equal(x.url.href, 'http://gw.test:3003/mcp?sessionId=s1');
    assert.equal(urlObject.href, 'http://gw.test:3003/mcp?sessionId=s1', 'removed in place too');

    const headerOnly = await plugin({ sources: ['header'] });
    const y = testExchange(route, '/mcp?token=abc.def.ghi');
    const v = refusal(await headerOnly.onRequest!(y));
    assert.equal(v.code, 'GW_ERR_TOKEN_SOURCE');
    assert.equal(y.url.search, '', 'a refused URL token is removed as well, so logs never see it');
    assert.equal(y.get(BEARER_TOKEN), undefined);
  });

  it('uses the configured query parameter name', async () => {
    const p = await plugin({ sources: ['query'], queryParam: 'access_token' });
    const x = testExchange(route, '/sse?access_token=t0k3n&token=other');
    assert.equal(await p.onRequest!(x), undefined);
    assert.equal(x.get(BEARER_TOKEN), 't0k3n');
    assert.equal(x.url.search, '?token=other');
  });

  it('refuses two different tokens (header and URL) and accepts the same one twice', async () => {
    const p = await plugin({ sources: ['header', 'query'] });
    const v = refusal(await p.onRequest!(testExchange(route, '/mcp?token=one', { authorization: 'Bearer two' })));
    assert.equal(v.code, 'GW_ERR_TOKEN_MALFORMED');
    const x = testExchange(route, '/mcp?token=one', { authorization: 'Bearer one' });
    assert.equal(await p.onRequest!(x), undefined);
    assert.equal(x.get(BEARER_TOKEN), 'one');
  });

  it('ignores the Authorization header on a query-only route', async () => {
    const p = await plugin({ sources: ['query'] });
    const v = refusal(await p.onRequest!(testExchange(route, '/mcp', { authorization: 'Bearer abc' })));
    assert.equal(v.code, 'GW_ERR_TOKEN_MISSING');
  });

  it('reads a named header and never forwards it upstream', async () => {
    const p = await plugin({ headerName: 'X-API-Key' });
    const x = testExchange(route, '/mcp', { 'x-api-key': 'k3y-value' });
    assert.equal(x.upstreamHeaders['x-api-key'], 'k3y-value');
    assert.equal(await p.onRequest!(x), undefined);
    assert.equal(x.get(BEARER_TOKEN), 'k3y-value');
    assert.equal(x.upstreamHeaders['x-api-key'], undefined);
    const bearerPrefixed = testExchange(route, '/mcp', { 'x-api-key': 'Bearer k3y' });
    await p.onRequest!(bearerPrefixed);
    assert.equal(bearerPrefixed.get(BEARER_TOKEN), 'k3y');
  });

  it('rejects unknown options (strict config)', () => {
    assert.equal(TokenConfigSchema.safeParse({ source: ['header'] }).success, false);
    assert.equal(TokenConfigSchema.safeParse({ sources: ['cookie'] }).success, false);
  });
});
