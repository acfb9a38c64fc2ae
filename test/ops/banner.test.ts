/**
 * The start-up banner: complete, in pipeline order, and free of secrets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bannerInfoFromConfig, formatBanner } from '../../gateway/banner.ts';
import { GatewayConfigSchema } from '../../config/schema.ts';

const SECRET = 'upstream-key-9f8e7d6c';

const config = GatewayConfigSchema.parse({
  listeners: [
    { name: 'header', port: 3001 },
    { name: 'query', host: '0.0.0.0', port: 0, publicUrl: 'https://mcp.example.com' },
  ],
  upstreams: {
    falkordb: { url: `http://svc:${SECRET}@falkordb-mcp:3000/mcp?key=${SECRET}`, headers: { Authorization: `Bearer ${SECRET}` } },
    memory: { stdio: { command: 'mcp-server-memory', args: ['--key', SECRET], env: { API_KEY: SECRET } } },
    scratch: { stdio: { command: 'node', mode: 'per-session' } },
  },
  routes: [
    { name: 'graph', listener: 'header', path: '/mcp', upstream: 'falkordb', plugins: [{ type: 'token' }, { type: 'jwt' }, { type: 'rate-limit' }, { type: 'graph-rewrite' }, { type: 'audit' }] },
    { listener: 'query', path: '/memory', upstream: 'memory' },
  ],
  admin: { token: 'admin-token' },
});

describe('formatBanner', () => {
  const lines = formatBanner(
    bannerInfoFromConfig(config, {
      configPath: '/etc/mcp-gateway/gateway.yaml',
      version: '0.1.0',
      listenerUrls: { header: 'http://127.0.0.1:3001' },
      adminUrl: 'http://127.0.0.1:9090',
    }),
  );
  const text = lines.join('\n');

  it('names the config, every listener with its address, and where metrics and probes are', () => {
    assert.equal(lines[0], 'mcp-gateway 0.1.0 started with /etc/mcp-gateway/gateway.yaml');
    assert.match(text, /^ {2}header +http:\/\/127\.0\.0\.1:3001$/m);
    // A listener not yet bound falls back to its public URL.
    assert.match(text, /^ {2}query +https:\/\/mcp\.example\.com$/m);
    assert.match(text, /metrics: http:\/\/127\.0\.0\.1:9090\/metrics/);
    assert.match(text, /\/healthz .*\/readyz/);
    assert.match(text, /admin API: http:\/\/127\.0\.0\.1:9090\/admin\//);
  });

  it('lists each route with its plugins in pipeline order, and flags open routes', () => {
    assert.match(text, /^ {2}graph +header\/mcp +-> falkordb +\[token > jwt > rate-limit > graph-rewrite > audit\]$/m);
    assert.match(text, /^ {2}query\/memory +query\/memory +-> memory +\[no plugins: open route\]$/m);
  });

  it('describes upstreams without any credential', () => {
    assert.match(text, /^ {2}falkordb +http +http:\/\/falkordb-mcp:3000\/mcp +adds headers: authorization$/m);
    assert.match(text, /^ {2}memory +stdio +mcp-server-memory +one process per \{tenant\}$/m);
    assert.match(text, /^ {2}scratch +stdio +node +one process per session$/m);
    assert.ok(!text.includes(SECRET), 'a secret reached the banner');
    assert.ok(!text.includes('admin-token'));
  });

  it('says when the admin API or the whole admin listener is off', () => {
    const noToken = formatBanner(bannerInfoFromConfig({ ...config, admin: { ...config.admin, token: '' } }, { configPath: 'g.yaml', listenerUrls: {}, adminUrl: 'http://127.0.0.1:9090' }));
    assert.ok(noToken.includes('admin API: off (set admin.token to enable it)'));
    const disabled = formatBanner(bannerInfoFromConfig({ ...config, admin: { ...config.admin, enabled: false } }, { configPath: 'g.yaml', listenerUrls: {} }));
    assert.ok(disabled.some((l) => l.startsWith('admin listener: disabled')));
    assert.ok(!disabled.some((l) => l.startsWith('metrics:')));
  });

  it('ends with the pid to signal, and how to stop and reload', () => {
    const last = lines[lines.length - 1];
    assert.equal(last, `pid ${process.pid}: Ctrl-C or SIGTERM stops it (in-flight requests finish first); SIGHUP, or saving /etc/mcp-gateway/gateway.yaml, reloads it`);
    const other = formatBanner(bannerInfoFromConfig(config, { configPath: 'g.yaml', listenerUrls: {}, pid: 4242 }));
    assert.match(other[other.length - 1], /^pid 4242: /);
  });

  it('is pure: same input, same lines', () => {
    const info = bannerInfoFromConfig(config, { configPath: 'g.yaml', listenerUrls: {}, adminUrl: 'http://127.0.0.1:9090' });
    assert.deepEqual(formatBanner(info), formatBanner(structuredClone(info)));
  });
});

describe('the sign-in line', () => {
  const info = (authorization?: unknown) =>
    formatBanner(bannerInfoFromConfig(GatewayConfigSchema.parse({ ...config, authorization }), {
      configPath: 'g.yaml', listenerUrls: { header: 'http://127.0.0.1:3001' }, adminUrl: 'http://127.0.0.1:9090',
    })).join('\n');

  it('says where people sign in and against which accounts, when the gateway runs its authorization server', () => {
    assert.match(info({ accounts: { usersFile: 'users.yaml' } }), /^sign-in: http:\/\/127\.0\.0\.1:3001\/oauth\/authorize \(accounts: users\.yaml \(npm run users -- add\)\)$/m);
    assert.match(
      info({ listener: 'query', accounts: { oidc: { issuer: 'https://idp.example.com/realms/acme', clientId: 'gw', tenant: { fixed: 'acme' } } } }),
      /^sign-in: https:\/\/mcp\.example\.com\/oauth\/authorize \(accounts: OpenID Connect at https:\/\/idp\.example\.com\/realms\/acme\)$/m,
    );
  });

  it('is absent without one', () => {
    assert.doesNotMatch(info(), /sign-in/);
  });
});
