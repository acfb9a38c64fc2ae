/**
 * A `federation:` upstream once the config is loaded: the target the runtime builds for it (served in
 * process, 2025 era, its own unused agent), its end with its runtime (shutdown and reload), and the
 * places that describe upstreams by kind: the banner, `--check`, the metrics.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../config/load.ts';
import type { FederationUpstreamConfig } from '../../config/schema.ts';
import { bannerInfoFromConfig, formatBanner } from '../../gateway/banner.ts';
import { checkConfig } from '../../gateway/check.ts';
import type { Federation } from '../../gateway/federation/index.ts';
import { GatewayMetrics } from '../../gateway/metrics.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/wait.ts';

/** Written before its members; members on a port nothing listens on (nothing here calls them). */
const YAML = `
listeners: [{ name: main, port: 0 }]
upstreams:
  workspace:
    federation:
      prefix: always
      members:
        everything: {}
        memory: { prefix: mem, tenants: [acme, "lab-*"], scopes: [notes] }
  everything: { url: "http://127.0.0.1:9/mcp" }
  memory: { stdio: { command: node, args: [server.js], mode: per-session } }
routes: [{ listener: main, path: /mcp, upstream: workspace }]
log: { level: silent }
`;

/** Counts calls of the federation's `close` (its own method still runs). */
function countCloses(fed: Federation): { count: number } {
  const calls = { count: 0 };
  const close = fed.close.bind(fed);
  fed.close = () => {
    calls.count++;
    close();
  };
  return calls;
}

describe('the runtime of a federation', () => {
  it('builds an in-process target in front of its members, after them', async () => {
    const tg = await startTestGateway(YAML);
    try {
      const upstreams = tg.gw.runtime().upstreams;
      assert.deepEqual([...upstreams.keys()], ['everything', 'memory', 'workspace'], 'built after its members, though written first');
      const t = upstreams.get('workspace')!;
      assert.equal(t.kind, 'federation');
      assert.ok(t.federation, 'the target carries its federation');
      assert.equal(t.federation.name, 'workspace');
      assert.equal(t.inProcess, t.federation, 'exchanges are dispatched to the federation');
      assert.equal(t.origin, 'http://federation.invalid');
      assert.equal(t.basePath, '/mcp');
      assert.deepEqual(t.timeouts, { connect: 0, firstByte: 0, idle: 0, total: 0 });
      const headers = t.requestHeaders(undefined);
      assert.deepEqual(headers, {});
      assert.ok(Object.isFrozen(headers));
      assert.equal(t.era.pinned(), '2025', 'a federation speaks the 2025 era');
      assert.notEqual(t.agent, upstreams.get('everything')!.agent, 'an agent of its own');
      assert.equal(upstreams.get('memory')!.federation, undefined);
      assert.deepEqual(t.federation.status().map((m) => m.member), ['everything', 'memory']);
    } finally {
      await tg.close();
    }
  });

  it('closes the federation when the gateway shuts down', async () => {
    const tg = await startTestGateway(YAML);
    const closes = countCloses(tg.gw.runtime().upstreams.get('workspace')!.federation!);
    await tg.close();
    assert.equal(closes.count, 1);
  });

  it('builds a new federation on every reload and closes the old one', async () => {
    const tg = await startTestGateway(YAML);
    try {
      const old = tg.gw.runtime().upstreams.get('workspace')!.federation!;
      const closes = countCloses(old);
      const reloaded = await tg.gw.reload();
      assert.equal(reloaded.ok, true, reloaded.error);
      const next = tg.gw.runtime().upstreams.get('workspace')!.federation!;
      assert.notEqual(next, old);
      await waitFor(() => closes.count === 1, 'the old federation to close once its runtime retired');
    } finally {
      await tg.close();
    }
  });
});

describe('where upstreams are described by kind', () => {
  const config = parseConfig(YAML, { env: {}, source: 'g.yaml', dir: tmpdir() }).config;

  it('the banner lists a federation with its members, who sees them and their prefixes', () => {
    const text = formatBanner(bannerInfoFromConfig(config, { configPath: 'g.yaml', listenerUrls: {} })).join('\n');
    assert.match(
      text,
      /^ {2}workspace +federation +members: everything, memory \(tenants acme, lab-\*; scopes notes\) +names prefixed always: everything__, mem__$/m,
    );
    const fed = config.upstreams.workspace as FederationUpstreamConfig;
    const never = { ...config, upstreams: { ...config.upstreams, workspace: { federation: { ...fed.federation, prefix: 'never' as const } } } };
    assert.match(formatBanner(bannerInfoFromConfig(never, { configPath: 'g.yaml', listenerUrls: {} })).join('\n'), /^ {2}workspace +federation +members: .* +names never prefixed$/m);
  });

  it('mcpgw_federation_member_up reads each member\'s state at scrape time', async () => {
    const metrics = new GatewayMetrics({ processMetrics: false });
    let memoryOk = true;
    metrics.setFederationSource(() => [
      { upstream: 'workspace', member: 'everything', ok: true },
      { upstream: 'workspace', member: 'memory', ok: memoryOk },
    ]);
    const scrape = async () => (await metrics.render()).body;
    assert.match(await scrape(), /^mcpgw_federation_member_up\{upstream="workspace",member="memory"\} 1$/m);
    memoryOk = false;
    const body = await scrape();
    assert.match(body, /^mcpgw_federation_member_up\{upstream="workspace",member="memory"\} 0$/m);
    assert.match(body, /^mcpgw_federation_member_up\{upstream="workspace",member="everything"\} 1$/m);
    metrics.setFederationSource(() => { throw new Error('broken'); });
    assert.doesNotMatch(await scrape(), /^mcpgw_federation_member_up\{/m, 'a failing source reads empty, the scrape still works');
  });
});

describe('--check with a federation', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-fed-check-')); });
  after(() => rm(dir, { recursive: true, force: true }));

  it('accepts it, counting it as an upstream, and still checks its stdio members as upstreams', async () => {
    const ok = path.join(dir, 'ok.yaml');
    await writeFile(ok, YAML.replace('log: { level: silent }', 'admin: { enabled: false }'));
    assert.deepEqual(await checkConfig(ok, {}, () => {}), { listeners: 1, routes: 1, upstreams: 3, plugins: 0 });
    const typo = path.join(dir, 'typo.yaml');
    await writeFile(typo, YAML.replace('command: node', 'command: mcp-server-memroy').replace('log: { level: silent }', 'admin: { enabled: false }'));
    await assert.rejects(checkConfig(typo, {}, () => {}), (err: Error & { problems?: string[] }) => {
      assert.deepEqual(err.problems, ['upstreams.memory.stdio.command: command "mcp-server-memroy" not found (looked in node_modules/.bin and PATH)']);
      return true;
    });
  });
});
