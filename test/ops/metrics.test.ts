/**
 * GatewayMetrics: the exposition text, and that no label can grow without bound.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { register as globalRegistry } from 'prom-client';
import { GatewayMetrics, OTHER } from '../../gateway/metrics.ts';

/** Value of one sample in Prometheus text, matched by name and exact label set; undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]).sort(([a], [b]) => a.localeCompare(b));
    if (JSON.stringify(got) === JSON.stringify(want)) return Number(m[3]);
  }
  return undefined;
}

/** Every label set of one metric in the text. */
function series(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

const text = async (m: GatewayMetrics) => (await m.render()).body;

describe('GatewayMetrics', () => {
  it('counts exchanges by route, listener, method and status; gateway, upstream and stream times apart', async () => {
    const m = new GatewayMetrics({ processMetrics: false });
    m.exchangeDone({ route: 'graph', listener: 'main', method: 'POST', status: 200, gatewayMs: 12, upstreamMs: 9 });
    m.exchangeDone({ route: 'graph', listener: 'main', method: 'post', status: 200, gatewayMs: 3 });
    m.exchangeDone({ route: 'graph', listener: 'main', method: 'GET', status: 200, upstreamMs: 4, streamed: true, streamMs: 90_004 });
    // An SSE answer to a POST (every stdio call): its time to the first event counts, its gateway share too.
    m.exchangeDone({ route: 'graph', listener: 'main', method: 'PUT', status: 200, upstreamMs: 2, streamed: true, streamMs: 50, firstEventMs: 20, gatewayMs: 1 });
    const t = await text(m);
    assert.equal(sample(t, 'mcpgw_http_requests_total', { route: 'graph', listener: 'main', method: 'POST', status: '200' }), 2);
    assert.equal(sample(t, 'mcpgw_http_requests_total', { route: 'graph', listener: 'main', method: 'GET', status: '200' }), 1);
    assert.equal(sample(t, 'mcpgw_gateway_duration_seconds_count', { route: 'graph', listener: 'main', method: 'POST' }), 2);
    assert.equal(sample(t, 'mcpgw_gateway_duration_seconds_sum', { route: 'graph', listener: 'main', method: 'POST' }), 0.015);
    // The 90 s SSE stream is not a latency: it lands in the stream histogram only.
    assert.equal(sample(t, 'mcpgw_gateway_duration_seconds_count', { route: 'graph', listener: 'main', method: 'GET' }), undefined);
    assert.equal(sample(t, 'mcpgw_sse_stream_duration_seconds_count', { route: 'graph', listener: 'main' }), 2);
    assert.equal(sample(t, 'mcpgw_sse_stream_duration_seconds_sum', { route: 'graph', listener: 'main' }), 90.054);
    assert.equal(sample(t, 'mcpgw_gateway_duration_seconds_count', { route: 'graph', listener: 'main', method: 'PUT' }), 1);
    assert.equal(sample(t, 'mcpgw_sse_first_event_seconds_count', { route: 'graph', listener: 'main' }), 1);
    assert.equal(sample(t, 'mcpgw_sse_first_event_seconds_sum', { route: 'graph', listener: 'main' }), 0.02);
    assert.equal(sample(t, 'mcpgw_upstream_duration_seconds_count', { route: 'graph' }), 3);
    assert.equal(sample(t, 'mcpgw_upstream_duration_seconds_bucket', { route: 'graph', le: '0.005' }), 2);
    assert.match(t, /# HELP mcpgw_http_requests_total /);
    assert.match(t, /# TYPE mcpgw_gateway_duration_seconds histogram/);
  });

  it('maps methods and statuses outside their alphabets to fixed values', async () => {
    const m = new GatewayMetrics({ processMetrics: false });
    m.exchangeDone({ route: 'r', listener: 'l', method: 'PROPFIND', status: 207, gatewayMs: 1 });
    m.exchangeDone({ route: 'r', listener: 'l', method: 'GET', status: 0, gatewayMs: 1 });
    m.exchangeDone({ route: 'r', listener: 'l', method: 'GET', status: 1234, gatewayMs: 1 });
    const t = await text(m);
    assert.equal(sample(t, 'mcpgw_http_requests_total', { route: 'r', listener: 'l', method: OTHER, status: '207' }), 1);
    assert.equal(sample(t, 'mcpgw_http_requests_total', { route: 'r', listener: 'l', method: 'GET', status: '0' }), 2);
  });

  it('labels JSON-RPC messages by MCP method, and tools only for tools/call, capped per route', async () => {
    const m = new GatewayMetrics({ processMetrics: false, maxToolsPerRoute: 3 });
    m.message({ route: 'r', direction: 'request', method: 'tools/call', tool: 'query_graph' });
    m.message({ route: 'r', direction: 'request', method: 'tools/list', tool: 'ignored' });
    m.message({ route: 'r', direction: 'response', method: 'tools/call', tool: 'query_graph' });
    m.message({ route: 'r', direction: 'response' });
    m.message({ route: 'r', direction: 'response', method: 'response' });
    m.message({ route: 'r', direction: 'request', method: 'evil/method-with-a-session-id-1234' });
    // A client may name any tool: one with an unsafe name, then more distinct names than the cap.
    m.message({ route: 'r', direction: 'request', method: 'tools/call', tool: 'x" } 1\nfake_metric 9' });
    for (let i = 0; i < 50; i++) m.message({ route: 'r', direction: 'request', method: 'tools/call', tool: `made_up_${i}` });
    // The cap is per route: another route has its own budget of names.
    m.message({ route: 'other-route', direction: 'request', method: 'tools/call', tool: 'made_up_49' });
    const t = await text(m);
    assert.equal(sample(t, 'mcpgw_jsonrpc_messages_total', { route: 'r', direction: 'request', method: 'tools/call', tool: 'query_graph' }), 1);
    assert.equal(sample(t, 'mcpgw_jsonrpc_messages_total', { route: 'r', direction: 'request', method: 'tools/list', tool: '' }), 1);
    assert.equal(sample(t, 'mcpgw_jsonrpc_messages_total', { route: 'r', direction: 'response', method: 'tools/call', tool: 'query_graph' }), 1);
    assert.equal(sample(t, 'mcpgw_jsonrpc_messages_total', { route: 'r', direction: 'response', method: 'response', tool: '' }), 2);
    assert.equal(sample(t, 'mcpgw_jsonrpc_messages_total', { route: 'r', direction: 'request', method: OTHER, tool: '' }), 1);
    // query_graph + made_up_0 + made_up_1 fill the cap of 3; the unsafe name and 48 others are `other`.
    assert.equal(sample(t, 'mcpgw_jsonrpc_messages_total', { route: 'r', direction: 'request', method: 'tools/call', tool: OTHER }), 49);
    assert.equal(sample(t, 'mcpgw_jsonrpc_messages_total', { route: 'other-route', direction: 'request', method: 'tools/call', tool: 'made_up_49' }), 1);
    assert.equal(series(t, 'mcpgw_jsonrpc_messages_total').filter((l) => l.includes('route="r"') && l.includes('method="tools/call"')).length, 5);
    assert.doesNotMatch(t, /fake_metric/);
  });

  it('counts refusals by plugin and stable code only', async () => {
    const m = new GatewayMetrics({ processMetrics: false });
    m.refusal({ route: 'r', plugin: 'jwt', code: 'GW_ERR_TOKEN_EXPIRED' });
    m.refusal({ route: 'r', plugin: 'jwt', code: 'GW_ERR_TOKEN_EXPIRED' });
    m.refusal({ route: 'r', plugin: '', code: 'GW_ERR_BODY_TOO_LARGE' });
    m.refusal({ route: 'r', plugin: 'jwt', code: 'token eyJhbGciOi… is bad' });
    const t = await text(m);
    assert.equal(sample(t, 'mcpgw_refusals_total', { route: 'r', plugin: 'jwt', code: 'GW_ERR_TOKEN_EXPIRED' }), 2);
    assert.equal(sample(t, 'mcpgw_refusals_total', { route: 'r', plugin: 'gateway', code: 'GW_ERR_BODY_TOO_LARGE' }), 1);
    assert.equal(sample(t, 'mcpgw_refusals_total', { route: 'r', plugin: 'jwt', code: OTHER }), 1);
    assert.doesNotMatch(t, /eyJ/);
  });

  it('counts over-budget refusals of the rate-limit plugin as rate-limited, and nothing else', async () => {
    const m = new GatewayMetrics({ processMetrics: false });
    m.refusal({ route: 'r', plugin: 'rate-limit', code: 'GW_ERR_RATE_LIMITED', tenant: 'acme' });
    m.refusal({ route: 'r', plugin: 'rate-limit', code: 'GW_ERR_TOO_MANY_STREAMS', tenant: 'acme' });
    // Misconfiguration or a Redis outage is a refusal, not a tenant over budget.
    m.refusal({ route: 'r', plugin: 'rate-limit', code: 'GW_ERR_RATE_LIMIT_UNAVAILABLE', tenant: 'acme' });
    // Another plugin using a look-alike code does not count.
    m.refusal({ route: 'r', plugin: 'my-plugin', code: 'GW_ERR_RATE_LIMITED' });
    const t = await text(m);
    assert.equal(sample(t, 'mcpgw_rate_limited_total', { route: 'r', code: 'GW_ERR_RATE_LIMITED' }), 1);
    assert.equal(sample(t, 'mcpgw_rate_limited_total', { route: 'r', code: 'GW_ERR_TOO_MANY_STREAMS' }), 1);
    assert.equal(series(t, 'mcpgw_rate_limited_total').length, 2);
    assert.equal(sample(t, 'mcpgw_refusals_total', { route: 'r', plugin: 'rate-limit', code: 'GW_ERR_RATE_LIMIT_UNAVAILABLE' }), 1);
  });

  it('keeps tenants out of labels unless configured, and caps them when they are in', async () => {
    const limited = (m: GatewayMetrics, tenant: string) => m.refusal({ route: 'r', plugin: 'rate-limit', code: 'GW_ERR_RATE_LIMITED', tenant });
    const off = new GatewayMetrics({ processMetrics: false });
    limited(off, 'acme');
    limited(off, 'globex');
    const tOff = await text(off);
    assert.equal(sample(tOff, 'mcpgw_rate_limited_total', { route: 'r', code: 'GW_ERR_RATE_LIMITED' }), 2);
    assert.doesNotMatch(tOff, /acme|globex/);

    const on = new GatewayMetrics({ processMetrics: false, tenantLabels: true, maxTenants: 2 });
    for (const tenant of ['acme', 'globex', 'acme', 'initech', 'umbrella']) limited(on, tenant);
    const tOn = await text(on);
    const at = (tenant: string) => sample(tOn, 'mcpgw_rate_limited_total', { route: 'r', code: 'GW_ERR_RATE_LIMITED', tenant });
    assert.equal(at('acme'), 2);
    assert.equal(at('globex'), 1);
    assert.equal(at(OTHER), 2);
    assert.equal(series(tOn, 'mcpgw_rate_limited_total').length, 3);
    // Tenants never reach the refusals counter, even with tenant labels on.
    assert.equal(series(tOn, 'mcpgw_refusals_total').filter((l) => /acme|globex/.test(l)).length, 0);
  });

  it('tracks upstream errors, open streams and reloads', async () => {
    const m = new GatewayMetrics({ processMetrics: false });
    m.upstreamError({ upstream: 'falkordb', kind: 'timeout' });
    m.upstreamError({ upstream: 'falkordb', kind: 'unreachable' });
    m.upstreamError({ upstream: 'falkordb', kind: 'unreachable' });
    m.streamOpened('r');
    m.streamOpened('r');
    m.streamClosed('r');
    let t = await text(m);
    assert.equal(sample(t, 'mcpgw_upstream_errors_total', { upstream: 'falkordb', kind: 'timeout' }), 1);
    assert.equal(sample(t, 'mcpgw_upstream_errors_total', { upstream: 'falkordb', kind: 'unreachable' }), 2);
    assert.equal(sample(t, 'mcpgw_sse_streams_open', { route: 'r' }), 1);
    assert.equal(sample(t, 'mcpgw_config_reloads_total', { outcome: 'failure' }), 0);
    assert.equal(sample(t, 'mcpgw_config_last_reload_successful'), 1);

    m.reload('failure');
    t = await text(m);
    assert.equal(sample(t, 'mcpgw_config_reloads_total', { outcome: 'failure' }), 1);
    assert.equal(sample(t, 'mcpgw_config_last_reload_successful'), 0);
    const before = sample(t, 'mcpgw_config_last_reload_success_timestamp_seconds')!;
    await new Promise((r) => setTimeout(r, 5));
    m.reload('success');
    t = await text(m);
    assert.equal(sample(t, 'mcpgw_config_reloads_total', { outcome: 'success' }), 1);
    assert.equal(sample(t, 'mcpgw_config_last_reload_successful'), 1);
    assert.ok(sample(t, 'mcpgw_config_last_reload_success_timestamp_seconds')! > before);
  });

  it('reads process-pool gauges at scrape time, by upstream only (pool keys may be session ids)', async () => {
    let procs = [
      { upstream: 'memory', pool: 'acme', sessions: 2, rssBytes: 1000 },
      { upstream: 'memory', pool: 'sess-3f2a9c', sessions: 1, rssBytes: 500 },
      { upstream: 'other', pool: 'x', sessions: 0 },
    ];
    const m = new GatewayMetrics({ processMetrics: false });
    m.setProcessSource(() => procs);
    let t = await text(m);
    assert.equal(sample(t, 'mcpgw_upstream_processes', { upstream: 'memory' }), 2);
    assert.equal(sample(t, 'mcpgw_upstream_process_sessions', { upstream: 'memory' }), 3);
    assert.equal(sample(t, 'mcpgw_upstream_process_rss_bytes', { upstream: 'memory' }), 1500);
    assert.equal(sample(t, 'mcpgw_upstream_processes', { upstream: 'other' }), 1);
    assert.doesNotMatch(t, /sess-3f2a9c|acme/);

    // A pool that went away disappears from the gauges instead of freezing at its last value.
    procs = [{ upstream: 'memory', pool: 'acme', sessions: 1, rssBytes: 700 }];
    t = await text(m);
    assert.equal(sample(t, 'mcpgw_upstream_processes', { upstream: 'memory' }), 1);
    assert.equal(sample(t, 'mcpgw_upstream_processes', { upstream: 'other' }), undefined);

    // A failing source never breaks the scrape.
    m.setProcessSource(() => { throw new Error('pool exploded'); });
    t = await text(m);
    assert.equal(sample(t, 'mcpgw_upstream_processes', { upstream: 'memory' }), undefined);
    assert.match(t, /mcpgw_http_requests_total/);
  });

  it('uses its own registry: two instances coexist and the global registry stays empty', async () => {
    const a = new GatewayMetrics({ version: '1.2.3' });
    const b = new GatewayMetrics();
    a.exchangeDone({ route: 'a', listener: 'l', method: 'GET', status: 200, gatewayMs: 1 });
    const ta = await text(a);
    const tb = await text(b);
    assert.equal(sample(ta, 'mcpgw_http_requests_total', { route: 'a', listener: 'l', method: 'GET', status: '200' }), 1);
    assert.equal(sample(tb, 'mcpgw_http_requests_total', { route: 'a', listener: 'l', method: 'GET', status: '200' }), undefined);
    assert.equal(sample(ta, 'mcpgw_build_info', { version: '1.2.3', node: process.version }), 1);
    // Node process metrics come with the gateway's prefix.
    assert.match(ta, /^mcpgw_process_resident_memory_bytes \d+/m);
    assert.equal((await a.render()).contentType.startsWith('text/plain'), true);
    assert.equal(globalRegistry.getMetricsAsArray().length, 0);
  });

  it('documents every gateway metric in docs/operations.md', async () => {
    const docs = readFileSync(path.resolve(import.meta.dirname, '../../docs/operations.md'), 'utf8');
    const ours = (await text(new GatewayMetrics({ processMetrics: false })))
      .split('\n')
      .filter((l) => l.startsWith('# TYPE mcpgw_'))
      .map((l) => l.split(' ')[2]);
    assert.ok(ours.length >= 15);
    for (const name of ours) assert.ok(docs.includes(`\`${name}\``), `${name} is not in the metrics list of docs/operations.md`);
  });
});

describe('metrics through the gateway', () => {
  it('an answer sent as SSE (as every stdio call is) counts in the gateway duration and the first-event time', async () => {
    const { startRecordingUpstream } = await import('../helpers/recording-upstream.ts');
    const { startTestGateway } = await import('../helpers/gateway.ts');
    const up = await startRecordingUpstream((rec) => ({
      kind: 'sse', events: [{ data: JSON.stringify({ jsonrpc: '2.0', id: (rec.json as { id: number }).id, result: {} }) }],
    }));
    const gw = await startTestGateway(`
listeners: [{ name: main, port: 0 }]
upstreams:
  up: { url: ${up.url} }
routes:
  - { listener: main, path: /mcp, upstream: up }
`);
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${gw.url()}/mcp`, {
          method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
          body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/list' }),
        });
        assert.match(await res.text(), /"result"/);
      }
      const t = await (await fetch(`${gw.adminUrl()}/metrics`)).text();
      const labels = { route: 'main/mcp', listener: 'main' };
      assert.equal(sample(t, 'mcpgw_gateway_duration_seconds_count', { ...labels, method: 'POST' }), 3);
      assert.equal(sample(t, 'mcpgw_sse_first_event_seconds_count', labels), 3);
      assert.equal(sample(t, 'mcpgw_sse_stream_duration_seconds_count', labels), 3);
    } finally {
      await gw.close();
      await up.close();
    }
  });
});
