/**
 * /readyz with federations: a federation is ready while one of its members answers, and says which do
 * not; an upstream that serves only as a member never makes the gateway unready by itself (its check is
 * listed as degraded), while one a route names directly keeps failing readiness as before.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../config/load.ts';
import type { Federation } from '../../gateway/federation/index.ts';
import type { MemberStatus } from '../../gateway/federation/types.ts';
import { federationProbe, runReadiness, runtimeReadinessChecks } from '../../gateway/health.ts';
import type { Runtime, UpstreamTarget } from '../../gateway/runtime.ts';
import { startTestGateway } from '../helpers/gateway.ts';

type Report = { status: string; checks: Array<{ name: string; ok: boolean; degraded?: boolean; reason?: string; detail?: string }> };

const member = (name: string, ok: boolean, reason?: string): MemberStatus => ({ member: name, ok, ...(reason && { reason }), since: 0 });

describe('federationProbe', () => {
  it('is ready with every member answering, and says how many', async () => {
    const r = await federationProbe({ status: () => [member('a', true), member('b', true)] })();
    assert.deepStrictEqual(r, { ok: true, detail: '2 of 2 members answering' });
  });

  it('is ready but degraded while one member answers, naming the others and why', async () => {
    const r = await federationProbe({
      status: () => [member('everything', true), member('memory', false, 'HTTP 401'), member('graphs', false, 'timed out after 5000 ms')],
    })();
    assert.deepStrictEqual(r, {
      ok: true,
      degraded: true,
      detail: '1 of 3 members answering; degraded: memory (HTTP 401), graphs (timed out after 5000 ms)',
    });
  });

  it('fails when no member answers', async () => {
    const r = await federationProbe({ status: () => [member('a', false, 'ECONNREFUSED'), member('b', false)] })();
    assert.deepStrictEqual(r, { ok: false, reason: '0 of 2 members answering; degraded: a (ECONNREFUSED), b' });
  });
});

describe('readiness of a runtime with a federation', () => {
  /** A runtime as far as readiness reads it: its config, and targets whose checks answer at once. */
  function runtimeOf(yaml: string, statuses: MemberStatus[]): Pick<Runtime, 'upstreams' | 'loaded'> {
    const loaded = parseConfig(yaml, { env: {}, source: 'g.yaml', dir: tmpdir() });
    const upstreams = new Map<string, UpstreamTarget>();
    for (const name of Object.keys(loaded.config.upstreams)) {
      const federation = name === 'workspace' ? ({ status: () => statuses } as unknown as Federation) : undefined;
      // Members are stdio targets whose probe fails: each says so in its check.
      const stdio = { probe: () => ({ ok: false, reason: `${name} is down` }) };
      upstreams.set(name, { name, ...(federation ? { federation } : { stdio }) } as unknown as UpstreamTarget);
    }
    return { loaded, upstreams };
  }
  const YAML = (routes: string) => `
listeners: [{ name: main, port: 0 }]
upstreams:
  a: { stdio: { command: node } }
  b: { stdio: { command: node } }
  workspace: { federation: { members: { a: {}, b: {} } } }
routes: ${routes}
`;

  it('is not ready when no member of a routed federation answers, though each member alone only degrades', async () => {
    const runtime = runtimeOf(YAML('[{ listener: main, path: /mcp, upstream: workspace }]'), [member('a', false, 'x'), member('b', false, 'y')]);
    const report = await runReadiness(runtimeReadinessChecks(runtime, undefined), 1000);
    assert.equal(report.ready, false);
    assert.deepEqual(report.checks.map((c) => [c.name, c.ok, c.degraded ?? false]), [
      ['upstream:a', false, true],
      ['upstream:b', false, true],
      ['upstream:workspace', false, false],
    ]);
  });

  it('is ready with one member answering; a member a route also names counts as before', async () => {
    const routes = '[{ listener: main, path: /mcp, upstream: workspace }]';
    const one = await runReadiness(runtimeReadinessChecks(runtimeOf(YAML(routes), [member('a', true), member('b', false, 'y')]), undefined), 1000);
    assert.equal(one.ready, true);
    const direct = `[{ listener: main, path: /mcp, upstream: workspace }, { listener: main, path: /b, upstream: b }]`;
    const report = await runReadiness(runtimeReadinessChecks(runtimeOf(YAML(direct), [member('a', true), member('b', false, 'y')]), undefined), 1000);
    assert.equal(report.ready, false);
    assert.deepEqual(report.checks.find((c) => c.name === 'upstream:b'), { name: 'upstream:b', ok: false, reason: 'b is down', ms: report.checks[1].ms });
  });
});

describe('/readyz of a gateway with a federation', () => {
  let live: Server;
  let livePort: number;
  let deadPort: number;
  before(async () => {
    // Answers the probe's OPTIONS like an MCP server that has no use for it.
    live = createServer((_req, res) => res.writeHead(405).end());
    await new Promise<void>((r) => live.listen(0, '127.0.0.1', r));
    livePort = (live.address() as AddressInfo).port;
    // A port that was free a moment ago: connections to it are refused.
    const gone = createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', r));
    deadPort = (gone.address() as AddressInfo).port;
    await new Promise<void>((r) => gone.close(() => r()));
  });
  after(() => new Promise<void>((r) => live.close(() => r())));

  const yaml = (extraRoutes: string) => `
listeners: [{ name: main, port: 0 }]
upstreams:
  live: { url: "http://127.0.0.1:${livePort}/mcp" }
  dead: { url: "http://127.0.0.1:${deadPort}/mcp" }
  workspace: { federation: { members: { live: {}, dead: {} } } }
routes:
  - { listener: main, path: /mcp, upstream: workspace }
${extraRoutes}
log: { level: silent }
`;

  async function readyz(extraRoutes: string): Promise<{ status: number; body: Report }> {
    const tg = await startTestGateway(yaml(extraRoutes));
    try {
      const res = await fetch(`${tg.adminUrl()}/readyz`);
      return { status: res.status, body: (await res.json()) as Report };
    } finally {
      await tg.close();
    }
  }

  it('stays ready when an upstream used only as a member fails, listing it as degraded with its reason', async () => {
    const { status, body } = await readyz('');
    assert.equal(status, 200);
    assert.equal(body.status, 'ready');
    const dead = body.checks.find((c) => c.name === 'upstream:dead')!;
    assert.equal(dead.ok, false);
    assert.equal(dead.degraded, true);
    assert.match(dead.reason!, /unreachable: ECONNREFUSED/);
    const fed = body.checks.find((c) => c.name === 'upstream:workspace')!;
    assert.equal(fed.ok, true);
    assert.match(fed.detail!, /^\d of 2 members answering/);
    assert.equal(body.checks.find((c) => c.name === 'upstream:live')!.ok, true);
    assert.equal(body.checks.find((c) => c.name === 'upstream:live')!.degraded, undefined, 'a passing check is not degraded');
  });

  it('is not ready when a route names that upstream directly', async () => {
    const { status, body } = await readyz('  - { listener: main, path: /dead, upstream: dead }');
    assert.equal(status, 503);
    assert.equal(body.status, 'not_ready');
    const dead = body.checks.find((c) => c.name === 'upstream:dead')!;
    assert.equal(dead.ok, false);
    assert.equal(dead.degraded, undefined);
    assert.match(dead.reason!, /unreachable: ECONNREFUSED/);
  });
});
