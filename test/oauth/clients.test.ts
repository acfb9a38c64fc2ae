/**
 * The client registry: Client ID Metadata Documents served by a real local server (allowPrivateNetworks
 * on, as on-prem setups and tests use it), Dynamic Client Registration with what real clients send,
 * and confidential-client secrets. Redirect-URI matching: redirect-uri.test.ts.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { OAuthClientInformationFullSchema } from '@modelcontextprotocol/sdk/shared/auth.js';
import { OAuthError, type OAuthStore } from '../../gateway/oauth/contracts.ts';
import { ClientsConfigSchema, createClientRegistry } from '../../gateway/oauth/clients/index.ts';
import { cacheLifetime } from '../../gateway/oauth/clients/metadata-document.ts';

const silent = pino({ level: 'silent' });

/** A Map-backed OAuthStore that also records every write (TTL included). */
function mapStore() {
  const map = new Map<string, unknown>();
  const puts: Array<{ kind: string; key: string; ttlMs: number }> = [];
  const store: OAuthStore = {
    async put(kind, key, value, ttlMs) { puts.push({ kind, key, ttlMs }); map.set(`${kind}:${key}`, structuredClone(value)); },
    async get<T>(kind: string, key: string) { return structuredClone(map.get(`${kind}:${key}`)) as T | undefined; },
    async take<T>(kind: string, key: string) { const v = map.get(`${kind}:${key}`) as T | undefined; map.delete(`${kind}:${key}`); return v; },
    async delete(kind, key) { map.delete(`${kind}:${key}`); },
  };
  return { store, map, puts };
}

/** Asserts an OAuthError with this code whose description matches. */
function oauthError(error: string, description: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof OAuthError, `expected an OAuthError, got ${String(err)}`);
    assert.equal(err.error, error);
    assert.match(err.message, description);
    return true;
  };
}

describe('Client ID Metadata Documents', () => {
  let server: http.Server;
  let base: string;
  const hits = new Map<string, number>();
  /** path → [status, headers, body]; the body may use {self} for the document's own URL. */
  const routes = new Map<string, [number, Record<string, string>, string]>();
  const json = { 'content-type': 'application/json' };
  const doc = (extra: Record<string, unknown> = {}) => JSON.stringify({
    client_id: '{self}', client_name: 'Example MCP Client', client_uri: 'https://app.example.com',
    redirect_uris: ['http://127.0.0.1:3000/callback', 'http://localhost:3000/callback'],
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none', ...extra,
  });
  const registry = (metadataDocuments: Record<string, unknown> = {}) => createClientRegistry(
    ClientsConfigSchema.parse({ metadataDocuments: { allowPrivateNetworks: true, ...metadataDocuments } }),
    { store: mapStore().store, log: silent },
  );

  before(async () => {
    server = http.createServer((req, res) => {
      const path = req.url ?? '/';
      hits.set(path, (hits.get(path) ?? 0) + 1);
      const route = routes.get(path);
      if (!route) return void res.writeHead(404).end();
      res.writeHead(route[0], route[1]).end(route[2].replaceAll('{self}', `${base}${path}`));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    routes.set('/good.json', [200, json, doc()]);
    routes.set('/no-store.json', [200, { ...json, 'cache-control': 'no-store' }, doc()]);
    routes.set('/max-age-0.json', [200, { ...json, 'cache-control': 'public, max-age=0' }, doc()]);
    routes.set('/max-age-60.json', [200, { ...json, 'cache-control': 'max-age=60' }, doc()]);
    routes.set('/other-id.json', [200, json, doc({ client_id: 'https://elsewhere.example/client.json' })]);
    routes.set('/secret.json', [200, json, doc({ token_endpoint_auth_method: 'client_secret_post' })]);
    routes.set('/has-secret.json', [200, json, doc({ client_secret: 'hunter2' })]);
    routes.set('/jwt.json', [200, json, doc({ token_endpoint_auth_method: 'private_key_jwt' })]);
    routes.set('/no-redirects.json', [200, json, doc({ redirect_uris: undefined })]);
    routes.set('/relative.json', [200, json, doc({ redirect_uris: ['/callback'] })]);
    routes.set('/html.json', [200, { 'content-type': 'text/html' }, '<html></html>']);
    routes.set('/broken.json', [200, json, '{"client_id":']);
    routes.set('/minimal.json', [200, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify({ client_id: '{self}', redirect_uris: ['https://app.example.com/cb'] })]);
  });
  beforeEach(() => hits.clear());
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('resolves a document into a public client', async () => {
    const client = await registry().resolve(`${base}/good.json`);
    assert.deepEqual(client, {
      clientId: `${base}/good.json`, kind: 'metadata-document', clientName: 'Example MCP Client', clientUri: 'https://app.example.com',
      redirectUris: ['http://127.0.0.1:3000/callback', 'http://localhost:3000/callback'],
      tokenEndpointAuthMethod: 'none', grantTypes: ['authorization_code', 'refresh_token'],
    });
  });

  it('accepts a minimal document (client_name optional) served with a charset', async () => {
    const client = await registry().resolve(`${base}/minimal.json`);
    assert.deepEqual(client.grantTypes, ['authorization_code']);
    assert.equal(client.clientName, undefined);
  });

  it('caches a document: the second resolve does not reach the server', async () => {
    const r = registry();
    await r.resolve(`${base}/good.json`);
    await r.resolve(`${base}/good.json`);
    await r.resolve(`${base}/max-age-60.json`);
    await r.resolve(`${base}/max-age-60.json`);
    assert.equal(hits.get('/good.json'), 1);
    assert.equal(hits.get('/max-age-60.json'), 1);
  });

  it('respects Cache-Control: no-store and max-age=0 (fetched every time)', async () => {
    const r = registry();
    for (let i = 0; i < 2; i++) {
      await r.resolve(`${base}/no-store.json`);
      await r.resolve(`${base}/max-age-0.json`);
    }
    assert.equal(hits.get('/no-store.json'), 2);
    assert.equal(hits.get('/max-age-0.json'), 2);
  });

  it('cacheLifetime reads max-age, s-maxage, Age and no-store', () => {
    assert.equal(cacheLifetime(undefined, undefined), undefined);
    assert.equal(cacheLifetime('public', undefined), undefined);
    assert.equal(cacheLifetime('max-age=60', undefined), 60);
    assert.equal(cacheLifetime('public, max-age=60', '20'), 40);
    assert.equal(cacheLifetime('max-age=60, s-maxage=10', undefined), 10);
    assert.equal(cacheLifetime('max-age=60', '100'), 0);
    assert.equal(cacheLifetime('no-store, max-age=60', undefined), 0);
    assert.equal(cacheLifetime('No-Cache', undefined), 0);
  });

  it('shares one fetch between concurrent resolutions of the same URL', async () => {
    const r = registry();
    await Promise.all([1, 2, 3, 4].map(() => r.resolve(`${base}/good.json`)));
    assert.equal(hits.get('/good.json'), 1);
  });

  it('refuses a document whose client_id is not its URL', async () => {
    await assert.rejects(registry().resolve(`${base}/other-id.json`),
      oauthError('invalid_request', /the client metadata document at http:\/\/127\.0\.0\.1:\d+\/other-id\.json is unusable: its client_id "https:\/\/elsewhere\.example\/client\.json" is not the URL it was fetched from/));
  });

  it('refuses shared-secret and unsupported auth methods, and documents holding a secret', async () => {
    const r = registry();
    await assert.rejects(r.resolve(`${base}/secret.json`), oauthError('invalid_request', /token_endpoint_auth_method is client_secret_post, but a client metadata document is public/));
    await assert.rejects(r.resolve(`${base}/jwt.json`), oauthError('invalid_request', /"private_key_jwt" is not supported by this server; use none/));
    await assert.rejects(r.resolve(`${base}/has-secret.json`), oauthError('invalid_request', /contains a client_secret/));
  });

  it('refuses documents without usable redirect URIs, non-JSON and broken JSON', async () => {
    const r = registry();
    await assert.rejects(r.resolve(`${base}/no-redirects.json`), oauthError('invalid_request', /redirect_uris is required/));
    await assert.rejects(r.resolve(`${base}/relative.json`), oauthError('invalid_request', /"\/callback" is not an absolute URI/));
    await assert.rejects(r.resolve(`${base}/html.json`), oauthError('invalid_request', /served as "text\/html", not application\/json/));
    await assert.rejects(r.resolve(`${base}/broken.json`), oauthError('invalid_request', /not valid JSON/));
  });

  it('says why a document could not be fetched, and remembers the failure for a while', async () => {
    const r = registry();
    const failure = oauthError('invalid_client', /^the client metadata document at http:\/\/127\.0\.0\.1:\d+\/missing\.json could not be fetched: the server answered HTTP 404$/);
    await assert.rejects(r.resolve(`${base}/missing.json`), failure);
    await assert.rejects(r.resolve(`${base}/missing.json`), failure);
    assert.equal(hits.get('/missing.json'), 1);
  });

  it('refuses client_id URLs the draft forbids, before fetching anything', async () => {
    const r = registry();
    await assert.rejects(r.resolve(`${base}/`), oauthError('invalid_client', /must have a path/));
    await assert.rejects(r.resolve(`${base}/good.json#x`), oauthError('invalid_client', /must not have a fragment/));
    await assert.rejects(r.resolve(`${base}/a/../good.json`), oauthError('invalid_client', /"\." or "\.\." path segments/));
    await assert.rejects(r.resolve(`http://user:pw@127.0.0.1:1/c.json`), oauthError('invalid_client', /user name or password/));
    assert.equal(hits.size, 0);
  });

  it('without allowPrivateNetworks: https only, and no loopback or private addresses', async () => {
    const strict = createClientRegistry(ClientsConfigSchema.parse({}), { store: mapStore().store, log: silent });
    await assert.rejects(strict.resolve(`${base}/good.json`), oauthError('invalid_client', /it must use https/));
    const port = (server.address() as AddressInfo).port;
    await assert.rejects(strict.resolve(`https://127.0.0.1:${port}/good.json`),
      oauthError('invalid_client', /could not be fetched: 127\.0\.0\.1 is a loopback address/));
    await assert.rejects(strict.resolve(`https://localhost:${port}/good.json`),
      oauthError('invalid_client', /could not be fetched: localhost resolves to .*, a loopback address/));
    await assert.rejects(strict.resolve('https://169.254.169.254/latest/meta-data/iam'), oauthError('invalid_client', /link-local/));
    const rebinding = createClientRegistry(ClientsConfigSchema.parse({}), {
      store: mapStore().store, log: silent, resolveHost: async () => [{ address: '10.0.0.8', family: 4 }],
    });
    await assert.rejects(rebinding.resolve('https://client.example/meta.json'), oauthError('invalid_client', /client\.example resolves to 10\.0\.0\.8, a private/));
    assert.equal(hits.size, 0);
  });

  it('applies allowHosts and enabled', async () => {
    await assert.rejects(registry({ allowHosts: ['*.example.com'] }).resolve(`${base}/good.json`), oauthError('invalid_client', /host 127\.0\.0\.1 is not one this server accepts/));
    assert.ok(await registry({ allowHosts: ['127.0.0.*'] }).resolve(`${base}/good.json`));
    await assert.rejects(registry({ enabled: false }).resolve(`${base}/good.json`), oauthError('invalid_client', /turned off/));
  });

  it('warns at start when allowPrivateNetworks is on', () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    createClientRegistry(ClientsConfigSchema.parse({ metadataDocuments: { allowPrivateNetworks: true } }), { store: mapStore().store, log: pino({ level: 'info' }, sink) });
    assert.equal(lines.length, 1);
    assert.match(JSON.parse(lines[0]).msg, /allowPrivateNetworks is on/);
  });
});

describe('Dynamic Client Registration', () => {
  let env: ReturnType<typeof mapStore>;
  let registry: ReturnType<typeof createClientRegistry>;
  beforeEach(() => {
    env = mapStore();
    registry = createClientRegistry(ClientsConfigSchema.parse({}), { store: env.store, log: silent });
  });

  it('registers a public client (what mcp-remote and the SDK send) and answers RFC 7591 §3.2.1', async () => {
    const { client, response } = await registry.register({
      redirect_uris: ['http://localhost:3334/oauth/callback'], token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], client_name: 'MCP CLI Proxy',
      client_uri: 'https://github.com/modelcontextprotocol/mcp-cli', software_id: '2e6dc280-f3c3-4e01-99a7-8181dbd1d23d', software_version: '0.1.0',
    });
    assert.match(client.clientId, /^mcpgw-[A-Za-z0-9_-]{24}$/);
    assert.equal(response.client_id, client.clientId);
    assert.equal(typeof response.client_id_issued_at, 'number');
    assert.equal(response.client_secret, undefined);
    assert.deepEqual(response.redirect_uris, ['http://localhost:3334/oauth/callback']);
    assert.equal(response.token_endpoint_auth_method, 'none');
    // The SDK's client parses this response; it must pass the SDK's own schema.
    OAuthClientInformationFullSchema.parse(response);
    assert.deepEqual(await registry.resolve(client.clientId), client);
    assert.deepEqual(env.puts.map((p) => [p.kind, p.key, p.ttlMs]), [['client', client.clientId, 30 * 86_400_000]]);
  });

  it('omitted auth method means a public client; the defaults are filled in', async () => {
    const { client, response } = await registry.register({ redirect_uris: ['https://claude.ai/api/mcp/auth_callback'] });
    assert.equal(client.tokenEndpointAuthMethod, 'none');
    assert.deepEqual(response.grant_types, ['authorization_code']);
    assert.deepEqual(response.response_types, ['code']);
  });

  it('registers what VS Code sends, keeping the grant types this server supports', async () => {
    const { client, response } = await registry.register({
      client_name: 'Visual Studio Code', client_uri: 'https://code.visualstudio.com',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'], response_types: ['code'],
      redirect_uris: ['https://insiders.vscode.dev/redirect', 'https://vscode.dev/redirect', 'http://127.0.0.1/', 'http://127.0.0.1:33418/'],
      scope: 'mcp:tools', token_endpoint_auth_method: 'none',
    });
    assert.deepEqual(response.grant_types, ['authorization_code', 'refresh_token']);
    assert.deepEqual(client.grantTypes, ['authorization_code', 'refresh_token']);
    assert.equal(client.scope, 'mcp:tools');
    OAuthClientInformationFullSchema.parse(response);
  });

  it('registers what Claude sends: a confidential client with client_secret_post', async () => {
    const { response } = await registry.register({
      client_name: 'Claude', redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
      token_endpoint_auth_method: 'client_secret_post', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    });
    assert.equal(typeof response.client_secret, 'string');
  });

  it('accepts the redirect URIs real clients register', async () => {
    await registry.register({ redirect_uris: ['cursor://anysphere.cursor-retrieval/oauth/user-gateway/callback'], client_name: 'Cursor' });
    await registry.register({ redirect_uris: ['com.example.app:/oauth2redirect', 'http://[::1]/cb'], application_type: 'native' });
  });

  it('issues a secret once to a confidential client, stores only its hash, and checks it in constant time', async () => {
    const { client, response } = await registry.register({ redirect_uris: ['https://claude.ai/api/mcp/auth_callback'], token_endpoint_auth_method: 'client_secret_post' });
    const secret = response.client_secret as string;
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(response.client_secret_expires_at, 0);
    OAuthClientInformationFullSchema.parse(response);
    assert.ok(!JSON.stringify([...env.map.values()]).includes(secret), 'the store never holds the secret');
    const stored = await registry.resolve(client.clientId);
    assert.equal(await registry.verifySecret(stored, secret), true);
    assert.equal(await registry.verifySecret(stored, `${secret}x`), false);
    assert.equal(await registry.verifySecret(stored, ''), false);
    const pub = (await registry.register({ redirect_uris: ['https://a.example/cb'] })).client;
    assert.equal(await registry.verifySecret(pub, secret), false, 'a public client has no secret to match');
  });

  const invalid: Array<[string, unknown, string, RegExp]> = [
    ['no redirect_uris', { client_name: 'x' }, 'invalid_redirect_uri', /redirect_uris is required/],
    ['empty redirect_uris', { redirect_uris: [] }, 'invalid_redirect_uri', /redirect_uris is required/],
    ['a relative URI', { redirect_uris: ['/cb'] }, 'invalid_redirect_uri', /not an absolute URI/],
    ['a fragment', { redirect_uris: ['https://a.example/cb#x'] }, 'invalid_redirect_uri', /fragment/],
    ['http on a public host', { redirect_uris: ['http://a.example/cb'] }, 'invalid_redirect_uri', /http: on a host that is not loopback/],
    ['javascript:', { redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri', /javascript: scheme/],
    ['userinfo', { redirect_uris: ['https://u:p@a.example/cb'] }, 'invalid_redirect_uri', /user name or password/],
    ['too many URIs', { redirect_uris: Array.from({ length: 21 }, (_, i) => `https://a.example/${i}`) }, 'invalid_redirect_uri', /at most 20/],
    ['client_credentials only', { redirect_uris: ['https://a.example/cb'], grant_types: ['client_credentials'] }, 'invalid_client_metadata', /grant_types must include authorization_code/],
    ['refresh only', { redirect_uris: ['https://a.example/cb'], grant_types: ['refresh_token'] }, 'invalid_client_metadata', /must include authorization_code/],
    ['implicit', { redirect_uris: ['https://a.example/cb'], response_types: ['token'] }, 'invalid_client_metadata', /response_types must include code/],
    ['a grant type that is not a string', { redirect_uris: ['https://a.example/cb'], grant_types: [1] }, 'invalid_client_metadata', /grant_types must be an array of strings/],
    ['private_key_jwt', { redirect_uris: ['https://a.example/cb'], token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata', /not supported by this server; use none, client_secret_basic, client_secret_post/],
    ['a non-string name', { redirect_uris: ['https://a.example/cb'], client_name: 42 }, 'invalid_client_metadata', /client_name must be a string/],
    ['a bad scope', { redirect_uris: ['https://a.example/cb'], scope: 'a  b' }, 'invalid_client_metadata', /scope must be/],
    ['not an object', ['https://a.example/cb'], 'invalid_client_metadata', /must be a JSON object/],
    ['too large', { redirect_uris: ['https://a.example/cb'], client_name: 'x', policy_uri: 'y'.repeat(20_000) }, 'invalid_client_metadata', /at most 16000 are accepted/],
    ['a software statement', { redirect_uris: ['https://a.example/cb'], software_statement: 'eyJ...' }, 'invalid_software_statement', /not supported/],
  ];
  for (const [name, metadata, error, description] of invalid) {
    it(`refuses ${name}`, async () => {
      await assert.rejects(registry.register(metadata), oauthError(error, description));
      assert.equal(env.puts.length, 0);
    });
  }

  it('does not know ids it never issued, or clients the store forgot', async () => {
    await assert.rejects(registry.resolve('some-client'), oauthError('invalid_client', /unknown client_id "some-client"/));
    const { client } = await registry.register({ redirect_uris: ['https://a.example/cb'] });
    env.map.clear();
    await assert.rejects(registry.resolve(client.clientId), oauthError('invalid_client', /register again/));
  });

  it('extends the lifetime of a client in use', async () => {
    const { client } = await registry.register({ redirect_uris: ['https://a.example/cb'] });
    await registry.resolve(client.clientId);
    assert.equal(env.puts.length, 1, 'a fresh client is not rewritten on each use');
    const key = `client:${client.clientId}`;
    env.map.set(key, { ...(env.map.get(key) as object), renewedAt: Date.now() - 2 * 86_400_000 });
    await registry.resolve(client.clientId);
    assert.equal(env.puts.length, 2);
  });

  it('answers 404 when registration is turned off', async () => {
    const off = createClientRegistry(ClientsConfigSchema.parse({ dynamicRegistration: { enabled: false } }), { store: env.store, log: silent });
    await assert.rejects(off.register({ redirect_uris: ['https://a.example/cb'] }), (err: OAuthError) => err.status === 404 && /turned off/.test(err.message));
  });
});
