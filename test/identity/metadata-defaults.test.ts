/**
 * First-run discovery: a listener on 127.0.0.1 without `publicUrl`, reached as `localhost` (what the
 * README says) or `127.0.0.1` (what the bind says). The MCP SDK's own resource check must pass for
 * both, tokens bound to either spelling are accepted, and a route without authorization servers serves
 * no metadata and says how to get a token instead.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { discoverOAuthProtectedResourceMetadata, extractWWWAuthenticateParams, selectResourceURL } from '@modelcontextprotocol/sdk/client/auth.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { ISSUER, makeKey, sign, type TestKey } from '../fixtures/identity/tokens.ts';

let everything: RunningUpstream;
let tg: TestGateway;
let devGw: TestGateway;
let ed: TestKey;
let port: number;

before(async () => {
  [everything, ed] = await Promise.all([startEverything('streamableHttp'), makeKey('ed25519', 'ed-1')]);
  // No `audience`: it defaults to the resource. No `publicUrl`: the default derives from the bind.
  tg = await startTestGateway(`
listeners:
  - { name: main, host: 127.0.0.1, port: 0 }
  - { name: open, host: 127.0.0.1, port: 0, allowedHosts: ["*"] }
upstreams:
  everything: { url: "${everything.url}/mcp" }
x-jwt: &jwt
  type: jwt
  keys: { jwksFile: jwks.json }
  algorithms: [EdDSA]
  issuer: "${ISSUER}"
  authorizationServers: ["https://as.example.com"]
routes:
  - { listener: main, path: /mcp, upstream: everything, plugins: [{ type: token }, *jwt] }
  - { listener: open, path: /mcp, upstream: everything, plugins: [{ type: token }, *jwt] }
`, { files: { 'jwks.json': JSON.stringify({ keys: [ed.jwk] }) } });
  port = Number(new URL(tg.url('main')).port);
  // The default config's shape: the development issuer, no authorization server.
  devGw = await startTestGateway(`
listeners:
  - { name: main, host: 127.0.0.1, port: 0 }
upstreams:
  everything: { url: "${everything.url}/mcp" }
routes:
  - listener: main
    path: /mcp
    upstream: everything
    plugins:
      - { type: token }
      - { type: jwt, keys: { dev: { dir: .dev-keys } }, algorithms: [EdDSA], issuer: mcp-gateway-dev, audience: mcp-gateway }
`);
});

after(async () => {
  await Promise.all([tg?.close(), devGw?.close()]);
  await everything?.close();
});

/** A request to 127.0.0.1:<port> with the given Host (fetch may not set Host). */
function request(p: number, path: string, host: string, method = 'GET', headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: p, path, method, headers: { host, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(method === 'POST' ? JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'ping' }) : undefined);
  });
}

const POST_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

describe('discovery follows the loopback name the client used', () => {
  for (const name of ['localhost', '127.0.0.1']) {
    it(`a client configured with http://${name}:<port>/mcp passes the MCP SDK's resource check`, async () => {
      const serverUrl = `http://${name}:${port}/mcp`;
      const res = await fetch(serverUrl, { method: 'POST', headers: POST_HEADERS, body: '{"jsonrpc":"2.0","id":1,"method":"ping"}' });
      assert.equal(res.status, 401);
      const { resourceMetadataUrl } = extractWWWAuthenticateParams(res);
      assert.equal(resourceMetadataUrl?.href, `http://${name}:${port}/.well-known/oauth-protected-resource/mcp`);
      const metadata = await discoverOAuthProtectedResourceMetadata(serverUrl, { resourceMetadataUrl });
      assert.equal(metadata.resource, serverUrl);
      assert.deepEqual(metadata.authorization_servers, ['https://as.example.com']);
      // Throws "Protected resource … does not match expected …" when the names differ.
      assert.equal((await selectResourceURL(serverUrl, {} as never, metadata))?.href, serverUrl);
    });
  }

  it('[::1] too, and any other Host leaves the resource as configured', async () => {
    const v6 = await request(port, '/.well-known/oauth-protected-resource/mcp', `[::1]:${port}`);
    assert.equal(JSON.parse(v6.body).resource, `http://[::1]:${port}/mcp`);
    const openPort = Number(new URL(tg.url('open')).port);
    const other = await request(openPort, '/.well-known/oauth-protected-resource/mcp', `evil.example:${openPort}`);
    assert.equal(JSON.parse(other.body).resource, `http://127.0.0.1:${openPort}/mcp`);
    const refused = await request(openPort, '/mcp', `evil.example:${openPort}`, 'POST', POST_HEADERS);
    assert.match(String(refused.headers['www-authenticate']), new RegExp(`resource_metadata="http://127\\.0\\.0\\.1:${openPort}/`));
    // A loopback name on another port (a port mapping) is not guessed at either.
    const mapped = await request(port, '/.well-known/oauth-protected-resource/mcp', 'localhost:8080');
    assert.equal(JSON.parse(mapped.body).resource, `http://127.0.0.1:${port}/mcp`);
  });

  it('the default audience accepts a token bound to either spelling, and nothing else', async () => {
    for (const aud of [`http://localhost:${port}/mcp`, `http://127.0.0.1:${port}/mcp`]) {
      const token = await sign(ed, { aud });
      const r = await request(port, '/mcp', `localhost:${port}`, 'POST', { ...POST_HEADERS, authorization: `Bearer ${token}` });
      assert.notEqual(r.status, 401, `${aud}: ${r.body}`);
    }
    const elsewhere = await sign(ed, { aud: `http://localhost:${port + 1}/mcp` });
    const r = await request(port, '/mcp', `localhost:${port}`, 'POST', { ...POST_HEADERS, authorization: `Bearer ${elsewhere}` });
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.body).error.data.code, 'GW_ERR_TOKEN_AUDIENCE');
  });
});

describe('no authorization server (the default config)', () => {
  it('serves no protected-resource metadata', async () => {
    const devPort = Number(new URL(devGw.url('main')).port);
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const r = await request(devPort, path, `localhost:${devPort}`);
      assert.equal(r.status, 404, path);
      assert.equal(JSON.parse(r.body).resource, undefined, path);
    }
  });

  it('a request without a token gets a challenge with no resource_metadata that says how to mint one', async () => {
    const devPort = Number(new URL(devGw.url('main')).port);
    const r = await request(devPort, '/mcp', `localhost:${devPort}`, 'POST', POST_HEADERS);
    assert.equal(r.status, 401);
    const challenge = String(r.headers['www-authenticate']);
    assert.match(challenge, /^Bearer error="invalid_request", error_description="No token: [^"]*npm run token -- create[^"]*"$/);
    const body = JSON.parse(r.body);
    assert.equal(body.error.data.code, 'GW_ERR_TOKEN_MISSING');
    assert.match(body.error.message, /npm run token -- create/);
  });
});
