/**
 * Dynamic Client Registration (RFC 7591) through the client registry: what real clients send,
 * refusals that name the field, confidential-client secrets, and clients the store forgets.
 */
import { beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { OAuthClientInformationFullSchema } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { OAuthError } from '../../gateway/oauth/contracts.ts';
import { ClientsConfigSchema, createClientRegistry } from '../../gateway/oauth/clients/index.ts';
import { mapStore, oauthError } from './client-helpers.ts';

const silent = pino({ level: 'silent' });

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
