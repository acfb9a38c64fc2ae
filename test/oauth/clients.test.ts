/**
 * The client registry's Client ID Metadata Documents, served by a real local server (allowPrivateNetworks
 * on, as on-prem setups and tests use it). Registration: registration.test.ts; redirect-URI matching:
 * redirect-uri.test.ts; the SSRF guard: ssrf.test.ts.
 */
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ClientsConfigSchema, createClientRegistry } from '../../gateway/oauth/clients/index.ts';
import { cacheLifetime } from '../../gateway/oauth/clients/metadata-document.ts';
import { mapStore, oauthError } from './client-helpers.ts';

const silent = pino({ level: 'silent' });

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
    routes.set('/device-code.json', [200, json, doc({ grant_types: ['authorization_code', 'urn:ietf:params:oauth:grant-type:device_code'] })]);
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

  it('keeps the grant types this server supports (a document may list more)', async () => {
    assert.deepEqual((await registry().resolve(`${base}/device-code.json`)).grantTypes, ['authorization_code']);
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
