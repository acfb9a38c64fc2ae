/**
 * Sign-in through an upstream OpenID Connect provider, against a real one in process (oidc-provider):
 * the whole authorization code flow with PKCE, state and nonce, and what the gateway refuses.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { OAuthError, PendingSignInError, type OidcLogin } from '../../gateway/oauth/contracts.ts';
import { createOidcLogin, OIDC_STATE_KIND, OidcConfigSchema, type OidcConfigInput } from '../../gateway/oauth/accounts/oidc.ts';
import { browse, mapStore, startProvider, type TestProvider } from './oidc-provider-fixture.ts';

const CALLBACK = 'http://127.0.0.1:3001/oauth/callback';
const SECRET = 'gateway-client-secret-for-tests';
const log = pino({ level: 'silent' });

const DIRECTORY = {
  alice: { email: 'alice@acme.example', email_verified: true, name: 'Alice Example', org: { id: 'acme' }, groups: ['mcp:tools', 'mcp:admin'] },
  drifter: { email: 'drifter@nowhere.example', email_verified: true, name: 'No Org' },
  shouty: { email: 'shouty@acme.example', email_verified: true, org: { id: 'ACME Corp' } },
};

let provider: TestProvider;

before(async () => {
  provider = await startProvider({
    clients: [
      { client_id: 'gateway', client_secret: SECRET, redirect_uris: [CALLBACK] },
      { client_id: 'other-app', client_secret: 'other-secret-for-tests', redirect_uris: [CALLBACK] },
    ],
    directory: DIRECTORY,
  });
});
after(() => provider.close());

function config(extra: Partial<OidcConfigInput> = {}) {
  return OidcConfigSchema.parse({
    issuer: provider.issuer,
    clientId: 'gateway',
    clientSecret: SECRET,
    scopes: ['openid', 'email', 'profile', 'org'],
    tenant: { claim: 'org.id' },
    scopesClaim: 'groups',
    grantScopes: ['mcp:read'],
    ...extra,
  });
}

async function login(extra: Partial<OidcConfigInput> = {}, store = mapStore()) {
  return { login: await createOidcLogin(config(extra), { log, store }), store };
}

/** start → the provider's pages → the callback URL the browser brings back. */
async function signIn(oidc: OidcLogin, who: string, pendingId = 'pending-1', opts: { abort?: boolean } = {}) {
  const authorizationUrl = await oidc.start(pendingId, CALLBACK);
  return browse(authorizationUrl, CALLBACK, { login: who, ...opts });
}

describe('OIDC sign-in against a real provider', () => {
  it('signs in and maps the claims to an account', async () => {
    const { login: oidc } = await login();
    assert.equal(oidc.label, 'Sign in with ' + new URL(provider.issuer).host);
    const authorizationUrl = new URL(await oidc.start('pending-1', CALLBACK));
    // What the provider is asked: the code flow with PKCE (S256), a state and a nonce.
    assert.equal(authorizationUrl.searchParams.get('response_type'), 'code');
    assert.equal(authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authorizationUrl.searchParams.get('code_challenge'));
    assert.ok(authorizationUrl.searchParams.get('state'));
    assert.ok(authorizationUrl.searchParams.get('nonce'));
    assert.equal(authorizationUrl.searchParams.get('redirect_uri'), CALLBACK);

    const callback = await browse(authorizationUrl.href, CALLBACK, { login: 'alice' });
    const { pendingId, account } = await oidc.finish(callback, CALLBACK);
    assert.equal(pendingId, 'pending-1');
    assert.deepEqual(account, {
      subject: `${new URL(provider.issuer).host}|alice`,
      tenant: 'acme',
      scopes: ['mcp:read', 'mcp:tools', 'mcp:admin'],
      displayName: 'Alice Example',
      source: `oidc:${new URL(provider.issuer).host}`,
    });
  });

  it('refuses a replayed callback: the state is single use', async () => {
    const { login: oidc } = await login();
    const callback = await signIn(oidc, 'alice');
    await oidc.finish(callback, CALLBACK);
    await assert.rejects(oidc.finish(callback, CALLBACK), (err: unknown) => {
      assert.ok(err instanceof OAuthError && !(err instanceof PendingSignInError));
      assert.equal(err.error, 'invalid_request');
      return true;
    });
  });

  it('refuses an unknown state and a callback without one', async () => {
    const { login: oidc } = await login();
    const callback = await signIn(oidc, 'alice');
    const forged = new URL(callback);
    forged.searchParams.set('state', 'not-a-state-this-gateway-issued');
    await assert.rejects(oidc.finish(forged, CALLBACK), { error: 'invalid_request' });
    forged.searchParams.delete('state');
    await assert.rejects(oidc.finish(forged, CALLBACK), { error: 'invalid_request' });
    // The real callback still works: a forged one did not use up its state.
    assert.equal((await oidc.finish(callback, CALLBACK)).account.tenant, 'acme');
  });

  it('refuses an ID token whose nonce is not the one this sign-in sent', async () => {
    const { login: oidc, store } = await login();
    const callback = await signIn(oidc, 'alice');
    const state = callback.searchParams.get('state')!;
    const started = await store.get<Record<string, unknown>>(OIDC_STATE_KIND, state);
    await store.put(OIDC_STATE_KIND, state, { ...started, nonce: 'another-sign-ins-nonce' }, 60_000);
    await assert.rejects(oidc.finish(callback, CALLBACK), (err: unknown) => {
      assert.ok(err instanceof PendingSignInError);
      assert.equal(err.error, 'access_denied');
      assert.equal(err.pendingId, 'pending-1');
      assert.match(err.message, /could not be verified.*nonce/);
      return true;
    });
  });

  it('refuses a code redeemed with the wrong PKCE verifier', async () => {
    const { login: oidc, store } = await login();
    const callback = await signIn(oidc, 'alice');
    const state = callback.searchParams.get('state')!;
    const started = await store.get<Record<string, unknown>>(OIDC_STATE_KIND, state);
    await store.put(OIDC_STATE_KIND, state, { ...started, codeVerifier: 'x'.repeat(43) }, 60_000);
    await assert.rejects(oidc.finish(callback, CALLBACK), { error: 'access_denied', message: /invalid_grant/ });
  });

  it("refuses a code the provider issued to another client (an ID token for another audience never reaches the gateway's checks)", async () => {
    const store = mapStore();
    const { login: ours } = await login({}, store);
    const { login: theirs } = await login({ clientId: 'other-app', clientSecret: 'other-secret-for-tests' }, store);
    const callback = await signIn(theirs, 'alice');
    await assert.rejects(ours.finish(callback, CALLBACK), { error: 'access_denied', message: /invalid_grant/ });
  });

  it('refuses a person without the tenant claim, naming the claim', async () => {
    const { login: oidc } = await login();
    const callback = await signIn(oidc, 'drifter', 'pending-2');
    await assert.rejects(oidc.finish(callback, CALLBACK), (err: unknown) => {
      assert.ok(err instanceof PendingSignInError);
      assert.equal(err.error, 'access_denied');
      assert.equal(err.pendingId, 'pending-2');
      assert.match(err.message, /"org\.id"/);
      return true;
    });
  });

  it('refuses a tenant claim outside the tenant pattern', async () => {
    const { login: oidc } = await login();
    const callback = await signIn(oidc, 'shouty');
    await assert.rejects(oidc.finish(callback, CALLBACK), { error: 'access_denied', message: /"org\.id".*\^\[a-z0-9-\]/ });
  });

  it("passes the provider's refusal on with its description", async () => {
    const { login: oidc } = await login();
    const callback = await signIn(oidc, 'alice', 'pending-3', { abort: true });
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    await assert.rejects(oidc.finish(callback, CALLBACK), (err: unknown) => {
      assert.ok(err instanceof PendingSignInError);
      assert.equal(err.error, 'access_denied');
      assert.equal(err.pendingId, 'pending-3');
      assert.match(err.message, /End-User aborted interaction/);
      return true;
    });
  });

  it('refuses a callback at another address than the sign-in started from', async () => {
    const { login: oidc } = await login();
    const callback = await signIn(oidc, 'alice');
    await assert.rejects(oidc.finish(callback, 'http://127.0.0.1:3002/oauth/callback'), { error: 'invalid_request' });
  });

  it('maps a domain to a tenant with `tenant.emails`, and reads claims from userinfo when asked', async () => {
    const onlyInUserinfo = await startProvider({
      clients: [{ client_id: 'gateway', client_secret: SECRET, redirect_uris: [CALLBACK] }],
      directory: DIRECTORY,
      conformIdTokenClaims: true, // scope claims only at the userinfo endpoint
    });
    try {
      const cfg = { issuer: onlyInUserinfo.issuer, tenant: { emails: { '@acme.example': 'acme' } }, allowedDomains: ['acme.example'] };
      const without = await createOidcLogin(config({ ...cfg, userinfo: false }), { log, store: mapStore() });
      await assert.rejects(without.finish(await signIn(without, 'alice'), CALLBACK), { error: 'access_denied', message: /verified "email"/ });

      const withInfo = await createOidcLogin(config({ ...cfg, userinfo: true }), { log, store: mapStore() });
      const { account } = await withInfo.finish(await signIn(withInfo, 'alice'), CALLBACK);
      assert.equal(account.tenant, 'acme');
      assert.equal(account.displayName, 'Alice Example');
    } finally {
      await onlyInUserinfo.close();
    }
  });
});

describe('OIDC provider unreachable', () => {
  it('creates the login anyway and refuses sign-ins with temporarily_unavailable', async () => {
    const port = await closedPort();
    const cfg = OidcConfigSchema.parse({ issuer: `http://127.0.0.1:${port}`, clientId: 'gateway', tenant: { fixed: 'acme' } });
    const oidc = await createOidcLogin(cfg, { log, store: mapStore() });
    assert.equal(oidc.label, `Sign in with 127.0.0.1:${port}`);
    await assert.rejects(oidc.start('pending-1', CALLBACK), (err: unknown) => {
      assert.ok(err instanceof OAuthError);
      assert.equal(err.error, 'temporarily_unavailable');
      assert.equal(err.status, 503);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      return true;
    });
  });
});

describe('OIDC provider down at start, up later', () => {
  it('retries discovery on a later sign-in instead of staying broken', async () => {
    const late = await startProvider({
      clients: [{ client_id: 'gateway', client_secret: SECRET, redirect_uris: [CALLBACK] }],
      directory: DIRECTORY,
      down: true,
    });
    try {
      // discoveryRetry 0: no cooldown, so the test needs no clock.
      const oidc = await createOidcLogin(config({ issuer: late.issuer, discoveryRetry: 0 }), { log, store: mapStore() });
      await assert.rejects(oidc.start('pending-1', CALLBACK), { error: 'temporarily_unavailable' });
      late.up();
      const { account } = await oidc.finish(await signIn(oidc, 'alice'), CALLBACK);
      assert.equal(account.tenant, 'acme');
    } finally {
      await late.close();
    }
  });
});

/** A port nothing listens on: bound by us, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
