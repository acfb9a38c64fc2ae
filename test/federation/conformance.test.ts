/**
 * The official MCP conformance suite's server scenarios, run against an SDK v2 server (serving both
 * eras) directly and as the only member of a federation (`prefix: never`, so its names are its own):
 * every check must come out the same, except the differences below, each of which is a consequence of
 * what a federation is, with its reason. A difference is counted only if it reproduces when its
 * scenario runs again alone on both sides (the suite has timing windows of its own).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { startConformanceServer, type ConformanceServer } from '../helpers/conformance-server.ts';
import { differences, explain, runServerConformance, tally, type Revision } from '../helpers/conformance.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';

/** `<revision> <scenario> › <check>` → why it differs through a federation. */
const FEDERATION_DIFFERENCES: Record<string, string> = {
  '2025-11-25 server-sse-multiple-streams › server-sse-streams-functional':
    'the federation answers listings itself, merged, as JSON (SSE is optional), where the server streams them',
  ...Object.fromEntries([
    'server-stateless › sep-2575-server-rejects-undeclared-capability',
    'server-stateless › sep-2575-missing-capability-http-400',
  ].map((k) => [`2026-07-28 ${k}`, 'a member serving both eras is reached in the 2025 era (docs/eras.md), where the server does not check the client\'s capabilities per request'])),
  ...Object.fromEntries([
    'server-stateless › sep-2575-server-sends-prompts-list-changed-on-subscription',
    'server-stateless › sep-2575-server-sends-tools-list-changed-on-subscription',
  ].map((k) => [`2026-07-28 ${k}`, 'reached in the 2025 era, this server serves statelessly, without a GET stream: its list changes cannot be followed'])),
  ...Object.fromEntries([
    'input-required-result-basic-elicitation › sep-2322-elicitation-incomplete',
    'input-required-result-basic-elicitation › sep-2322-elicitation-complete',
    'input-required-result-capability-check › sep-2322-respect-client-capabilities',
    'input-required-result-ignore-extra-params › sep-2322-ignore-unexpected-params',
  ].map((k) => [`2026-07-28 ${k}`, 'the server\'s own multi round-trip requests become 2025 elicitation and back: their keys and shape are the translator\'s, not the server\'s'])),
};

describe('conformance: a federation of one server answers as the server does', () => {
  let direct: ConformanceServer;
  let member: ConformanceServer;
  let gw: TestGateway;

  before(async () => {
    direct = await startConformanceServer();
    member = await startConformanceServer();
    gw = await startTestGateway(`
listeners: [{ name: l, port: 0 }]
upstreams:
  server: { url: ${member.url} }
  federated: { federation: { prefix: never, members: { server: {} } } }
routes:
  - { listener: l, path: /mcp, upstream: federated }
`, {});
  });
  after(async () => {
    await gw?.close();
    await Promise.all([direct?.close(), member?.close()]);
  });

  async function compare(t: TestContext, revision: Revision): Promise<void> {
    const via = `${gw.url('l')}/mcp`;
    const [d, f] = await Promise.all([runServerConformance({ url: direct.url, revision }), runServerConformance({ url: via, revision })]);
    t.diagnostic(`directly: ${JSON.stringify(tally(d))}; through the federation: ${JSON.stringify(tally(f))}`);
    assert.deepEqual([...f.scenarios.keys()].sort(), [...d.scenarios.keys()].sort(), 'the same scenarios ran');
    const unexplained: string[] = [];
    for (const scenario of d.scenarios.keys()) {
      const known = (check: string) => FEDERATION_DIFFERENCES[`${revision} ${scenario} › ${check}`];
      let diffs = differences(scenario, d.scenarios.get(scenario), f.scenarios.get(scenario));
      if (diffs.some((x) => !known(x.check))) {
        const again = await Promise.all([runServerConformance({ url: direct.url, revision, scenario }), runServerConformance({ url: via, revision, scenario })]);
        diffs = differences(scenario, again[0].scenarios.get(scenario), again[1].scenarios.get(scenario));
      }
      for (const x of diffs) {
        const reason = known(x.check);
        if (reason) t.diagnostic(`known: ${explain(x)} — ${reason}`);
        else unexplained.push(explain(x));
      }
    }
    assert.deepEqual(unexplained, []);
  }

  test('2025-11-25', { timeout: 600_000 }, (t) => compare(t, '2025-11-25'));
  test('2026-07-28 (clients translated to the federation\'s 2025 era)', { timeout: 600_000 }, (t) => compare(t, '2026-07-28'));
});
