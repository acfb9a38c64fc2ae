/**
 * The MCP SDK's own OAuth client against the gateway's authorization server, end to end: discovery from
 * the 401, dynamic registration, the browser step (answered by the test), token, a tool call that
 * reaches the per-tenant upstream as the account's tenant, refresh with rotation; and a Client ID
 * Metadata Document client.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  auth, discoverAuthorizationServerMetadata, exchangeAuthorization, startAuthorization, UnauthorizedError,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { decodeJwt } from 'jose';
import type { TestGateway } from '../helpers/gateway.ts';
import { REDIRECT, SdkClientProvider, signIn, startAuthGateway } from './as-helpers.ts';

/** A client as the MCP SDK drives it, dynamically registered. */
const sdkClient = () => new SdkClientProvider('SDK test client', 'state-123');

let tg: TestGateway;
let mcpUrl: URL;

before(async () => {
  tg = await startAuthGateway(`  clients: { metadataDocuments: { allowPrivateNetworks: true } }`);
  mcpUrl = new URL('/mcp', tg.url('main').replace('127.0.0.1', 'localhost'));
});
after(async () => { await tg?.close(); });

async function connect(provider: SdkClientProvider): Promise<Client> {
  const client = new Client({ name: 'oauth-test', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
  return client;
}

describe('the MCP SDK client with dynamic registration', () => {
  const provider = sdkClient();

  it('is sent to sign in, and after it reaches the upstream as the account\'s tenant', async () => {
    const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
    await assert.rejects(new Client({ name: 'oauth-test', version: '1.0.0' }).connect(transport), UnauthorizedError);
    assert.ok(provider.client?.client_id, 'registered dynamically');
    assert.ok(provider.authUrl, 'sent to the authorization endpoint');
    assert.equal(provider.authUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(provider.authUrl.searchParams.get('resource'), mcpUrl.href);

    const back = await signIn(provider.authUrl);
    assert.equal(back.origin + back.pathname, REDIRECT);
    assert.equal(back.searchParams.get('state'), 'state-123', 'state is passed back');
    assert.equal(back.searchParams.get('iss'), mcpUrl.origin, 'RFC 9207 iss, in the spelling the client used');
    await transport.finishAuth(back.searchParams.get('code')!);

    const claims = decodeJwt(provider.saved!.access_token);
    assert.equal(claims.iss, mcpUrl.origin);
    assert.equal(claims.aud, mcpUrl.href);
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.tenant_id, 'acme');
    assert.equal(claims.scope, 'mcp:tools');
    assert.equal(claims.client_id, provider.client!.client_id);
    assert.ok(claims.jti);

    const client = await connect(provider);
    await client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'oauth-e2e', entityType: 'test', observations: ['signed in'] }] } });
    await client.close();
    const data = await readFile(path.join(tg.dir, 'data/memory-acme.jsonl'), 'utf8');
    assert.match(data, /oauth-e2e/, 'the tenant from the account chose the upstream process and its file');
  });

  it('refreshes: a new access token and a new refresh token; the old refresh token reused revokes the family', async () => {
    const before = provider.saved!;
    assert.ok(before.refresh_token);
    assert.equal(await auth(provider, { serverUrl: mcpUrl }), 'AUTHORIZED');
    const after = provider.saved!;
    assert.notEqual(after.access_token, before.access_token);
    assert.notEqual(after.refresh_token, before.refresh_token, 'rotated');
    const client = await connect(provider);
    await client.listTools();
    await client.close();

    // The old refresh token again: refused, and everything issued from that sign-in is revoked.
    const meta = await discoverAuthorizationServerMetadata(mcpUrl.origin);
    const reuse = await fetch(meta!.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: before.refresh_token!, client_id: provider.client!.client_id }),
    });
    assert.equal(reuse.status, 400);
    assert.equal(((await reuse.json()) as { error: string }).error, 'invalid_grant');
    const refused = await fetch(mcpUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${after.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    assert.equal(refused.status, 401);
    assert.match(refused.headers.get('www-authenticate') ?? '', /revoked/);
    const latest = await fetch(meta!.token_endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: after.refresh_token!, client_id: provider.client!.client_id }),
    });
    assert.equal(latest.status, 400, 'the newest refresh token of the family is dead too');
  });
});

describe('a Client ID Metadata Document client', () => {
  let docServer: http.Server;
  let clientId: string;

  before(async () => {
    docServer = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ client_id: clientId, client_name: 'Metadata document client', redirect_uris: [REDIRECT], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none' }));
    });
    await new Promise<void>((r) => docServer.listen(0, '127.0.0.1', r));
    clientId = `http://127.0.0.1:${(docServer.address() as AddressInfo).port}/client.json`;
  });
  after(() => new Promise<void>((r) => docServer.close(() => r())));

  it('signs in with its URL as client_id (SDK authorization and token functions) and gets no refresh token it did not register for', async () => {
    // The SDK's auth() only uses https metadata URLs; its building blocks run the same protocol.
    const meta = await discoverAuthorizationServerMetadata(mcpUrl.origin);
    assert.equal(meta!.client_id_metadata_document_supported, true);
    const { authorizationUrl, codeVerifier } = await startAuthorization(mcpUrl.origin, {
      metadata: meta, clientInformation: { client_id: clientId }, redirectUrl: REDIRECT, scope: 'mcp:tools', resource: mcpUrl, state: 'cimd',
    });
    const back = await signIn(authorizationUrl, { username: 'bob' });
    assert.equal(back.searchParams.get('state'), 'cimd');
    const tokens = await exchangeAuthorization(mcpUrl.origin, {
      metadata: meta, clientInformation: { client_id: clientId }, authorizationCode: back.searchParams.get('code')!, codeVerifier, redirectUri: REDIRECT, resource: mcpUrl,
    });
    assert.equal(tokens.refresh_token, undefined);
    const claims = decodeJwt(tokens.access_token);
    assert.equal(claims.client_id, clientId);
    assert.equal(claims.tenant_id, 'globex');
    const provider = sdkClient();
    provider.client = { client_id: clientId };
    provider.saved = tokens;
    const client = await connect(provider);
    await client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'cimd-e2e', entityType: 'test', observations: [] }] } });
    await client.close();
    assert.match(await readFile(path.join(tg.dir, 'data/memory-globex.jsonl'), 'utf8'), /cimd-e2e/);
  });
});
