/**
 * The admin listener over real sockets: open probes and metrics, token-guarded /admin/*, readiness
 * reasons, stable error codes, and no token in the log.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { startAdminServer, type AdminServer, type AdminSources, type ProcessInfo, type SessionInfo } from '../../gateway/admin.ts';
import { commandProbe, httpProbe, type ReadinessCheck } from '../../gateway/health.ts';
import { GatewayMetrics } from '../../gateway/metrics.ts';
import path from 'node:path';

const TOKEN = 'admin-secret-3f9c1e7a2b';

function captureLog() {
  let text = '';
  const sink = new Writable({ write(chunk, _enc, cb) { text += chunk.toString(); cb(); } });
  return { log: pino({ level: 'debug' }, sink), text: () => text };
}

/** A closed port: listen, note the port, close. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

class FakeSources implements AdminSources {
  loaded = true;
  ended: string[] = [];
  checks: ReadinessCheck[] = [];
  sessionList: SessionInfo[] = [
    { id: 'sess-a1', tenant: 'acme', subject: 'alice', route: 'graph', transport: 'streamable-http', openedAt: Date.parse('2025-01-01T00:00:00Z'), lastActivityAt: Date.now() - 1000, upstream: 'falkordb' },
    { id: 'sess-g1', tenant: 'globex', subject: 'bob', route: 'memory', transport: 'sse', openedAt: Date.parse('2025-01-02T00:00:00Z'), lastActivityAt: Date.now(), upstream: 'memory', process: { pool: 'globex', pid: 4242 } },
  ];
  processList: ProcessInfo[] = [{ upstream: 'memory', pool: 'globex', pid: 4242, sessions: 1, rssBytes: 52_000_000, uptimeMs: 60_000, restarts: 0 }];
  failSessions = false;
  sessions() {
    if (this.failSessions) throw new Error('session table exploded');
    return this.sessionList;
  }
  async endSession(id: string) {
    const i = this.sessionList.findIndex((s) => s.id === id);
    if (i < 0) return false;
    this.sessionList.splice(i, 1);
    this.ended.push(id);
    return true;
  }
  processes() { return this.processList; }
  readiness() { return this.checks; }
  configLoaded() { return this.loaded; }
}

async function getJson(url: string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  const text = await res.text();
  return { res, status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe('admin listener', () => {
  let admin: AdminServer;
  let sources: FakeSources;
  let metrics: GatewayMetrics;
  let logs: ReturnType<typeof captureLog>;
  const auth = { authorization: `Bearer ${TOKEN}` };

  before(async () => {
    sources = new FakeSources();
    metrics = new GatewayMetrics({ processMetrics: false });
    logs = captureLog();
    admin = await startAdminServer({ host: '127.0.0.1', port: 0, token: TOKEN, metrics, sources, log: logs.log, readinessTimeoutMs: 300 });
  });
  after(() => admin.close());

  it('serves /healthz without a token', async () => {
    const { status, body, res } = await getJson(`${admin.url}/healthz`);
    assert.equal(status, 200);
    assert.equal(body.status, 'alive');
    assert.match(res.headers.get('content-type')!, /^application\/json/);
  });

  it('serves /metrics as Prometheus text without a token', async () => {
    metrics.exchangeDone({ route: 'graph', listener: 'main', method: 'POST', status: 200, gatewayMs: 5 });
    const res = await fetch(`${admin.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    assert.match(await res.text(), /^mcpgw_http_requests_total\{route="graph",listener="main",method="POST",status="200"\} 1$/m);
  });

  it('answers /readyz 200 when every check passes', async () => {
    sources.checks = [
      { name: 'upstream:node', check: commandProbe('node', [path.dirname(process.execPath)]) },
      { name: 'fine', check: async () => ({ ok: true }) },
    ];
    const { status, body } = await getJson(`${admin.url}/readyz`);
    assert.equal(status, 200);
    assert.equal(body.status, 'ready');
    assert.deepEqual(body.checks.map((c: { name: string; ok: boolean }) => [c.name, c.ok]), [['config', true], ['upstream:node', true], ['fine', true]]);
  });

  it('answers /readyz 503 with each failing check and its reason; checks run concurrently with a timeout', async () => {
    const port = await closedPort();
    let hung: NodeJS.Timeout | undefined;
    sources.checks = [
      { name: 'upstream:down', check: httpProbe(`http://user:pw@127.0.0.1:${port}/mcp?key=k3y`, 1000) },
      { name: 'upstream:missing', check: commandProbe('no-such-mcp-server-xyz', [path.dirname(process.execPath)]) },
      { name: 'hangs', check: () => new Promise((r) => { hung = setTimeout(() => r({ ok: true }), 5000); }) },
      { name: 'throws', check: async () => { throw new Error('probe crashed'); } },
      { name: 'fine', check: async () => ({ ok: true }) },
    ];
    const t0 = performance.now();
    const { status, body } = await getJson(`${admin.url}/readyz`);
    const took = performance.now() - t0;
    clearTimeout(hung);
    assert.equal(status, 503);
    assert.equal(body.status, 'not_ready');
    const byName = Object.fromEntries(body.checks.map((c: { name: string }) => [c.name, c]));
    assert.equal(byName['upstream:down'].ok, false);
    assert.match(byName['upstream:down'].reason, /unreachable: ECONNREFUSED/);
    assert.doesNotMatch(JSON.stringify(body), /pw|k3y/, 'credentials in the probed URL never reach the answer');
    assert.equal(byName['upstream:missing'].ok, false);
    assert.match(byName['upstream:missing'].reason, /not found/);
    assert.equal(byName.hangs.ok, false);
    assert.match(byName.hangs.reason, /within 300ms/);
    assert.equal(byName.throws.ok, false);
    assert.equal(byName.throws.reason, 'probe crashed');
    assert.equal(byName.fine.ok, true);
    assert.ok(took < 1500, `readiness took ${took}ms: the hung check must be cut off at its timeout`);
  });

  it('answers /readyz 503 while no config is loaded', async () => {
    sources.loaded = false;
    try {
      const { status, body } = await getJson(`${admin.url}/readyz`);
      assert.equal(status, 503);
      assert.equal(body.checks[0].name, 'config');
      assert.match(body.checks[0].reason, /no configuration loaded/);
    } finally {
      sources.loaded = true;
    }
  });

  it('runs the checks once for concurrent /readyz probes', async () => {
    let runs = 0;
    sources.checks = [{ name: 'slow', check: async () => { runs++; await new Promise((r) => setTimeout(r, 100)); return { ok: true }; } }];
    const answers = await Promise.all(Array.from({ length: 5 }, () => getJson(`${admin.url}/readyz`)));
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200]);
    assert.equal(runs, 1);
  });

  it('refuses /admin/* without the token, or with a wrong one, with 401 GW_ERR_ADMIN_UNAUTHORIZED', async () => {
    for (const headers of [{}, { authorization: 'Bearer wrong-token' }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` }]) {
      const { status, body, res } = await getJson(`${admin.url}/admin/sessions`, { headers });
      assert.equal(status, 401, JSON.stringify(headers));
      assert.equal(body.error.code, 'GW_ERR_ADMIN_UNAUTHORIZED');
      assert.match(res.headers.get('www-authenticate')!, /^Bearer /);
    }
    const { status, body } = await getJson(`${admin.url}/admin/sessions/sess-a1`, { method: 'DELETE' });
    assert.equal(status, 401);
    assert.equal(body.error.code, 'GW_ERR_ADMIN_UNAUTHORIZED');
    assert.deepEqual(sources.ended, [], 'an unauthenticated DELETE ends nothing');
  });

  it('lists sessions with ISO times, filtered by tenant or route', async () => {
    const all = await getJson(`${admin.url}/admin/sessions`, { headers: auth });
    assert.equal(all.status, 200);
    assert.equal(all.body.count, 2);
    const acme = all.body.sessions.find((s: SessionInfo) => s.id === 'sess-a1');
    assert.equal(acme.openedAt, '2025-01-01T00:00:00.000Z');
    assert.equal(acme.tenant, 'acme');
    assert.ok(acme.idleMs >= 900);
    const globex = await getJson(`${admin.url}/admin/sessions?tenant=globex`, { headers: auth });
    assert.deepEqual(globex.body.sessions.map((s: SessionInfo) => s.id), ['sess-g1']);
    assert.deepEqual(globex.body.sessions[0].process, { pool: 'globex', pid: 4242 });
    const byRoute = await getJson(`${admin.url}/admin/sessions?route=graph`, { headers: auth });
    assert.deepEqual(byRoute.body.sessions.map((s: SessionInfo) => s.id), ['sess-a1']);
  });

  it('lists processes', async () => {
    const { status, body } = await getJson(`${admin.url}/admin/processes`, { headers: auth });
    assert.equal(status, 200);
    assert.deepEqual(body, { count: 1, processes: sources.processList });
  });

  it('ends a session with DELETE, and answers 404 GW_ERR_SESSION_NOT_FOUND for an unknown one', async () => {
    const unknown = await getJson(`${admin.url}/admin/sessions/does-not-exist`, { method: 'DELETE', headers: auth });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'GW_ERR_SESSION_NOT_FOUND');
    const malformed = await getJson(`${admin.url}/admin/sessions/%E0%A4%A`, { method: 'DELETE', headers: auth });
    assert.equal(malformed.status, 404);
    assert.equal(malformed.body.error.code, 'GW_ERR_SESSION_NOT_FOUND');

    const ended = await getJson(`${admin.url}/admin/sessions/sess-a1`, { method: 'DELETE', headers: auth });
    assert.equal(ended.status, 200);
    assert.deepEqual(ended.body, { ended: true, id: 'sess-a1' });
    assert.deepEqual(sources.ended, ['sess-a1']);
    const again = await getJson(`${admin.url}/admin/sessions/sess-a1`, { method: 'DELETE', headers: auth });
    assert.equal(again.status, 404);
    assert.equal(again.body.error.code, 'GW_ERR_SESSION_NOT_FOUND');
  });

  it('answers unknown paths 404 and wrong methods 405 with stable codes', async () => {
    const missing = await getJson(`${admin.url}/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'GW_ERR_NOT_FOUND');
    const missingAdmin = await getJson(`${admin.url}/admin/nope`, { headers: auth });
    assert.equal(missingAdmin.status, 404);
    assert.equal(missingAdmin.body.error.code, 'GW_ERR_NOT_FOUND');
    const post = await getJson(`${admin.url}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.body.error.code, 'GW_ERR_METHOD_NOT_ALLOWED');
    assert.equal(post.res.headers.get('allow'), 'GET, HEAD');
    const getSession = await getJson(`${admin.url}/admin/sessions/sess-g1`, { headers: auth });
    assert.equal(getSession.status, 405);
    assert.equal(getSession.res.headers.get('allow'), 'DELETE');
  });

  it('answers 500 GW_ERR_ADMIN_FAILED when a source throws, and keeps serving', async () => {
    sources.failSessions = true;
    try {
      const { status, body } = await getJson(`${admin.url}/admin/sessions`, { headers: auth });
      assert.equal(status, 500);
      assert.equal(body.error.code, 'GW_ERR_ADMIN_FAILED');
      assert.doesNotMatch(JSON.stringify(body), /exploded/, 'internal error text stays in the log');
    } finally {
      sources.failSessions = false;
    }
    assert.equal((await fetch(`${admin.url}/healthz`)).status, 200);
    assert.match(logs.text(), /session table exploded/);
  });

  it('never writes the admin token to the log', () => {
    assert.match(logs.text(), /missing or wrong admin token/);
    assert.ok(!logs.text().includes(TOKEN), 'admin token found in the log');
  });
});

describe('admin listener without a token', () => {
  let admin: AdminServer;
  before(async () => {
    admin = await startAdminServer({
      host: '127.0.0.1', port: 0, token: '', metrics: new GatewayMetrics({ processMetrics: false }),
      sources: new FakeSources(), log: pino({ level: 'silent' }),
    });
  });
  after(() => admin.close());

  it('turns /admin/* off with 403 GW_ERR_ADMIN_DISABLED, whatever the request carries', async () => {
    for (const [method, p, headers] of [
      ['GET', '/admin/sessions', {}],
      ['GET', '/admin/processes', { authorization: 'Bearer ' }],
      ['DELETE', '/admin/sessions/sess-a1', { authorization: 'Bearer anything' }],
    ] as const) {
      const { status, body } = await getJson(`${admin.url}${p}`, { method, headers });
      assert.equal(status, 403, `${method} ${p}`);
      assert.equal(body.error.code, 'GW_ERR_ADMIN_DISABLED');
      assert.match(body.error.message, /admin\.token/);
    }
  });

  it('still serves the probes and metrics', async () => {
    assert.equal((await fetch(`${admin.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${admin.url}/readyz`)).status, 200);
    assert.equal((await fetch(`${admin.url}/metrics`)).status, 200);
  });
});

describe('admin listener start', () => {
  let blocker: Server;
  before(async () => {
    blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  });
  after(() => new Promise<void>((r) => blocker.close(() => r())));

  it('rejects when its port is taken, instead of running without an admin listener', async () => {
    const { port } = blocker.address() as AddressInfo;
    await assert.rejects(
      startAdminServer({ host: '127.0.0.1', port, token: TOKEN, metrics: new GatewayMetrics({ processMetrics: false }), sources: new FakeSources(), log: pino({ level: 'silent' }) }),
      /EADDRINUSE/,
    );
  });
});
