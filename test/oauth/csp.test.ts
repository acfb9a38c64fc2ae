/**
 * The sign-in pages' Content-Security-Policy: `form-action` allows this server and, on the consent
 * page, exactly the client's redirect target (its origin, or its scheme when private-use), because
 * Chromium checks the 303 after the consent POST against it. test/oauth/browser-login.test.ts shows the
 * same with a real Chromium and a `cursor://` client.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { pagePolicy, redirectSource } from '../../gateway/oauth/csp.ts';
import type { TestGateway } from '../helpers/gateway.ts';
import { Browser, hidden, PASSWORD, startAuthGateway } from './as-helpers.ts';

const CURSOR = 'cursor://anysphere.cursor-retrieval/oauth/user-mcp/callback';

/** The source list of one directive of a policy. */
function directive(policy: string | null, name: string): string[] {
  const found = (policy ?? '').split(';').map((d) => d.trim().split(/\s+/)).find(([n]) => n === name);
  assert.ok(found, `no ${name} in ${policy}`);
  return found.slice(1);
}

describe('redirectSource', () => {
  it('is the origin of an http(s) redirect URI and the scheme of a private-use one', () => {
    assert.equal(redirectSource('https://app.example.com/cb?x=1'), 'https://app.example.com');
    assert.equal(redirectSource('http://127.0.0.1:33418/callback'), 'http://127.0.0.1:33418');
    assert.equal(redirectSource('http://localhost:9/cb'), 'http://localhost:9');
    assert.equal(redirectSource(CURSOR), 'cursor:');
    assert.equal(redirectSource('com.example.app:/oauth'), 'com.example.app:');
  });

  it('falls back to the scheme for an IPv6 literal, which Chromium does not accept in a host-source', () => {
    assert.equal(redirectSource('http://[::1]:5000/cb'), 'http:');
  });

  it('writes nothing that could break out of the directive', () => {
    // The URL parser accepts `;` and `,` in a host; in the header they would start another directive.
    assert.equal(redirectSource('https://a;script-src,b.example/cb'), undefined);
    assert.equal(pagePolicy('https://a;sandbox.example/cb').split(';').length, pagePolicy().split(';').length);
    assert.equal(redirectSource('not a uri'), undefined);
  });
});

describe('the consent page of a client with a custom-scheme redirect URI', () => {
  let tg: TestGateway;
  before(async () => { tg = await startAuthGateway(); });
  after(async () => { await tg?.close(); });

  it("allows only this server and the client's redirect scheme as form targets", async () => {
    const base = tg.url('main');
    const reg = await fetch(`${base}/oauth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: 'Cursor', redirect_uris: [CURSOR], token_endpoint_auth_method: 'none' }),
    });
    assert.equal(reg.status, 201);
    const { client_id } = (await reg.json()) as { client_id: string };
    const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
    const url = new URL('/oauth/authorize', base);
    for (const [k, v] of Object.entries({
      response_type: 'code', client_id, redirect_uri: CURSOR, resource: `${base}/mcp`, scope: 'mcp:tools', state: 's',
      code_challenge: challenge, code_challenge_method: 'S256',
    })) url.searchParams.set(k, v);

    const browser = new Browser();
    const loginRes = await browser.fetch(url);
    assert.equal(loginRes.status, 200);
    // The login form posts here and is answered with a page, never a redirect: this server only.
    assert.deepEqual(directive(loginRes.headers.get('content-security-policy'), 'form-action'), ["'self'"]);
    const login = await loginRes.text();
    const consentRes = await browser.post(`${base}/oauth/login`, {
      request_id: hidden(login, 'request_id'), csrf: hidden(login, 'csrf'), username: 'alice', password: PASSWORD,
    });
    assert.equal(consentRes.status, 200);
    const policy = consentRes.headers.get('content-security-policy');
    assert.deepEqual(directive(policy, 'form-action'), ["'self'", 'cursor:']);
    assert.deepEqual(directive(policy, 'default-src'), ["'none'"]);
    assert.deepEqual(directive(policy, 'frame-ancestors'), ["'none'"]);
  });
});
