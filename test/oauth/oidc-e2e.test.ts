/**
 * Sign-in through an upstream OpenID Connect provider, end to end through the gateway's own endpoints:
 * the MCP SDK client discovers the authorization server from the 401 and registers; the "browser" opens
 * the login page, follows its "Sign in with …" link to the provider (a real oidc-provider in process),
 * signs in and consents there, comes back to /oauth/callback, allows on the gateway's consent page and
 * lands on the client's redirect URI with code, state and iss. The token then reaches the per-tenant
 * upstream as the tenant the provider's claim names. A person the provider signs in without that claim
 * ends at the client's redirect URI with `error=access_denied` and the client's state.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { decodeJwt } from 'jose';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { Browser, hidden, REDIRECT, SdkClientProvider } from './as-helpers.ts';
import { browse, startProvider, type TestProvider } from './oidc-provider-fixture.ts';

const SECRET = 'gateway-client-secret-for-tests';

const DIRECTORY = {
  carol: { email: 'carol@initech.example', email_verified: true, name: 'Carol', org: { id: 'initech' } },
  drifter: { email: 'drifter@nowhere.example', email_verified: true, name: 'No Org' },
};

/** A client as the MCP SDK drives it; its state comes back on the redirect. */
const sdkClient = (state: string) => new SdkClientProvider('OIDC e2e client', state);

let idp: TestProvider;
let tg: TestGateway;
let base: string;
let mcpUrl: URL;

before(async () => {
  // The provider must know the gateway's callback before it accepts a sign-in, and the gateway's port
  // is known only once it listens: the provider is started down, the gateway's discovery of it fails
  // (discoveryRetry 0: retried on the first sign-in), then the provider is built with the callback.
  idp = await startProvider({
    down: true,
    clients: () => [{ client_id: 'gateway', client_secret: SECRET, redirect_uris: [`${base}/oauth/callback`] }],
    directory: DIRECTORY,
  });
  tg = await startTestGateway(`
listeners:
  - { name: main, host: 127.0.0.1, port: 0 }
upstreams:
  memory:
    stdio:
      command: mcp-server-memory
      poolKey: '{tenant}'
      pathEnv: { MEMORY_FILE_PATH: 'data/memory-{tenant}.jsonl' }
authorization:
  scopes: [mcp:tools]
  accounts:
    oidc:
      issuer: ${idp.issuer}
      clientId: gateway
      clientSecret: \${OIDC_SECRET}
      label: Sign in with Test IdP
      scopes: [openid, email, profile, org]
      tenant: { claim: org.id }
      grantScopes: [mcp:tools]
      discoveryRetry: 0
routes:
  - listener: main
    path: /mcp
    upstream: memory
    plugins:
      - { type: token }
      - { type: jwt, authorizationServer: gateway, requiredScopes: [mcp:tools] }
`, { env: { OIDC_SECRET: SECRET } });
  base = tg.url('main');
  mcpUrl = new URL(`${base}/mcp`);
  idp.up();
});
after(async () => {
  await tg?.close();
  await idp?.close();
});

/** The SDK client's first connect: refused, registered, and sent to the authorization endpoint. */
async function startSignIn(client: SdkClientProvider): Promise<StreamableHTTPClientTransport> {
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: client });
  await assert.rejects(new Client({ name: 'oidc-e2e', version: '1.0.0' }).connect(transport), UnauthorizedError);
  assert.ok(client.client?.client_id, 'registered dynamically');
  assert.ok(client.authUrl, 'sent to the authorization endpoint');
  return transport;
}

/**
 * The browser step up to the gateway's callback: the login page, its provider link, the provider's
 * own pages. Returns the gateway's answer to the callback (the consent page, or a redirect).
 */
async function viaProvider(browser: Browser, authUrl: URL, login: string): Promise<Response> {
  const loginPage = await browser.fetch(authUrl);
  assert.equal(loginPage.status, 200);
  const html = await loginPage.text();
  assert.doesNotMatch(html, /name="password"/, 'no password form: only the provider signs people in here');
  const link = /<a [^>]*href="([^"]*\/oauth\/oidc\?[^"]*)"[^>]*>([^<]*)</.exec(html);
  assert.ok(link, `no provider link on the login page: ${html.slice(0, 400)}`);
  assert.equal(link[2], 'Sign in with Test IdP');
  const toProvider = await browser.fetch(new URL(link[1].replaceAll('&amp;', '&'), base));
  assert.equal(toProvider.status, 302);
  const providerUrl = toProvider.headers.get('location')!;
  assert.ok(providerUrl.startsWith(idp.issuer), `sent to the provider, not ${providerUrl}`);
  const callback = await browse(providerUrl, `${base}/oauth/callback`, { login });
  return browser.fetch(callback);
}

describe('signing in through the OIDC provider', () => {
  it('reaches the upstream as the tenant named by the provider\'s claim', async () => {
    const client = sdkClient('state-oidc');
    const transport = await startSignIn(client);
    const browser = new Browser();
    const consentRes = await viaProvider(browser, client.authUrl!, 'carol');
    const consent = await consentRes.text();
    assert.equal(consentRes.status, 200, consent.slice(0, 400));
    assert.match(consent, /initech/, 'the consent page names the tenant from the claim');
    const done = await browser.post(`${base}/oauth/consent`, { request_id: hidden(consent, 'request_id'), csrf: hidden(consent, 'csrf'), decision: 'allow' });
    assert.equal(done.status, 303);
    const back = new URL(done.headers.get('location')!);
    assert.equal(back.origin + back.pathname, REDIRECT);
    assert.equal(back.searchParams.get('state'), 'state-oidc');
    assert.equal(back.searchParams.get('iss'), mcpUrl.origin);
    await transport.finishAuth(back.searchParams.get('code')!);

    const claims = decodeJwt(client.saved!.access_token);
    assert.equal(claims.sub, `${new URL(idp.issuer).host}|carol`);
    assert.equal(claims.tenant_id, 'initech');
    assert.equal(claims.scope, 'mcp:tools');

    const mcp = new Client({ name: 'oidc-e2e', version: '1.0.0' });
    await mcp.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: client }));
    await mcp.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'oidc-e2e', entityType: 'test', observations: ['via the provider'] }] } });
    await mcp.close();
    assert.match(await readFile(path.join(tg.dir, 'data/memory-initech.jsonl'), 'utf8'), /oidc-e2e/,
      'the tenant from the provider\'s claim chose the upstream process and its file');
  });

  it('sends a person without the tenant claim back to the client with access_denied and its state', async () => {
    const client = sdkClient('state-drifter');
    await startSignIn(client);
    const browser = new Browser();
    const res = await viaProvider(browser, client.authUrl!, 'drifter');
    assert.equal(res.status, 302, 'a redirect to the client, not a page');
    const back = new URL(res.headers.get('location')!);
    assert.equal(back.origin + back.pathname, REDIRECT);
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.match(back.searchParams.get('error_description') ?? '', /"org\.id"/);
    assert.equal(back.searchParams.get('state'), 'state-drifter');
    assert.equal(back.searchParams.get('iss'), mcpUrl.origin);
    assert.equal(back.searchParams.get('code'), null);
    assert.equal([...browser.cookies.keys()].filter((k) => k.startsWith('mcpgw_oauth_')).length, 0, 'the sign-in cookie is cleared');
  });
});
