/**
 * OpenTelemetry traces: the gateway's real OTLP/HTTP exporter posting to an in-process receiver, real
 * MCP clients (SDK v1 for 2025-11-25, SDK v2 pinned to 2026-07-28) and an SDK v2 server that records
 * what it received. Every gateway is closed before its spans are read: close flushes the exporter, so
 * nothing here waits on the batch timer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { readMcpRequest, replaceMetaTraceparent } from '../../gateway/tracing/mcp-request.ts';
import { startTestGateway } from '../helpers/gateway.ts';
import { GATEWAY_ENV, tokenFor } from '../helpers/hs256-auth.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { connectV2 } from '../helpers/v2-client.ts';
import { startV2Server, type V2Server } from '../helpers/v2-server.ts';
import { AUTH_PLUGINS } from '../tenant/e2e-support.ts';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './support/otlp-receiver.ts';

const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;

/** A client-side span context: a fresh trace id and span id, sampled. */
function clientContext() {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

function parseTraceparent(v: unknown): { traceId: string; parentId: string; flags: string } {
  assert.equal(typeof v, 'string', 'a traceparent was sent');
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(v as string);
  assert.ok(m, `a W3C traceparent: ${String(v)}`);
  return { traceId: m[1], parentId: m[2], flags: m[3] };
}

function gatewayYaml(opts: { upstream: string; endpoint: string; tracing?: 'on' | 'off' | 'absent'; plugins?: string }): string {
  const tracing = opts.tracing === 'absent' ? '' : `
tracing:
  enabled: ${opts.tracing !== 'off'}
  serviceName: gw-under-test
  otlp: { endpoint: "${opts.endpoint}", headers: { x-collector-key: "k-123" } }`;
  return `
listeners: [{ name: main, port: 0 }]
upstreams:
  modern: { url: ${opts.upstream} }
routes:
  - listener: main
    path: /mcp
    upstream: modern
    plugins:${opts.plugins ?? ' []'}
${tracing}
`;
}

const FULL = `${AUTH_PLUGINS}
      - { type: rate-limit, key: tenant, limits: [{ name: all, points: 1000, duration: 1m }] }
      - { type: tool-policy, default: { deny: [list_graphs] } }`;

function toolsCallBody(seen: V2Server['seen'], tool: string) {
  const found = seen.filter((r) => r.method === 'POST' && (r.body as { method?: string; params?: { name?: string } } | undefined)?.method === 'tools/call'
    && (r.body as { params: { name?: string } }).params.name === tool);
  assert.equal(found.length, 1, `the upstream received one tools/call ${tool}`);
  return found[0];
}

function exchangeSpan(spans: ReceivedSpan[], name: string): ReceivedSpan {
  const found = spans.filter((s) => s.kind === SERVER && s.name === name);
  assert.equal(found.length, 1, `one exchange span named "${name}" among ${spans.map((s) => s.name).join(', ')}`);
  return found[0];
}

describe('tracing', () => {
  let v2: V2Server;
  let otlp: OtlpReceiver;
  let acme: string;

  before(async () => {
    [v2, otlp, acme] = await Promise.all([startV2Server(), startOtlpReceiver(), tokenFor('acme')]);
  });
  after(async () => {
    await Promise.all([v2?.close(), otlp?.close()]);
  });

  test('a 2025 client with a traceparent header: the exchange, its stages and the upstream call are one trace under the client span', async () => {
    const gw = await startTestGateway(gatewayYaml({ upstream: v2.url, endpoint: otlp.endpoint, plugins: FULL }), { env: GATEWAY_ENV });
    const ctx = clientContext();
    const before = otlp.spans.length;
    const client = await connectClient(`${gw.url()}/mcp`, { bearer: acme, headers: { traceparent: ctx.traceparent, tracestate: 'vendor=abc' } });
    try {
      await client.callTool({ name: 'echo', arguments: { text: 'traced' } });
      const denied = await client.callTool({ name: 'list_graphs', arguments: {} }).then(() => undefined, (err: unknown) => err);
      assert.ok(denied, 'tool-policy refused list_graphs');
    } finally {
      await client.close();
    }
    const seen = toolsCallBody(v2.seen, 'echo');
    await gw.close();

    const spans = otlp.spans.slice(before);
    assert.ok(otlp.posts.some((p) => p.headers['x-collector-key'] === 'k-123'), 'the configured export headers were sent');
    assert.ok(spans.every((s) => s.traceId === ctx.traceId), 'every span continues the client trace');
    assert.equal(spans[0].resource['service.name'], 'gw-under-test');

    const call = exchangeSpan(spans, 'tools/call echo');
    assert.equal(call.parentSpanId, ctx.spanId, 'the exchange span is a child of the client span');
    assert.equal(call.attributes['mcp.method.name'], 'tools/call');
    assert.equal(call.attributes['gen_ai.tool.name'], 'echo');
    assert.equal(call.attributes['mcpgw.tenant'], 'acme');
    assert.equal(call.attributes['mcpgw.route'], 'main/mcp');
    assert.equal(call.attributes['http.request.method'], 'POST');
    assert.equal(call.attributes['http.response.status_code'], 200);
    assert.equal(call.attributes['mcp.protocol.version'], '2025-11-25');

    const children = spans.filter((s) => s.parentSpanId === call.spanId);
    const byName = (n: string) => children.find((s) => s.name === n);
    for (const stage of ['request hooks', 'request messages', 'response hooks']) {
      assert.equal(byName(stage)?.kind, INTERNAL, `a "${stage}" span under the exchange (${children.map((s) => s.name).join(', ')})`);
    }
    const upstream = children.find((s) => s.kind === CLIENT);
    assert.ok(upstream, 'a CLIENT span for the upstream call');
    assert.equal(upstream.name, 'POST modern');
    assert.equal(upstream.attributes['http.response.status_code'], 200);

    // The upstream was told about the gateway's call, not about the client's span.
    const sent = parseTraceparent(seen.headers.traceparent);
    assert.equal(sent.traceId, ctx.traceId);
    assert.equal(sent.parentId, upstream.spanId, "the upstream's parent is the gateway's upstream-call span");
    assert.equal(sent.flags, '01');
    assert.equal(seen.headers.tracestate, 'vendor=abc', 'tracestate travels on');

    const refused = exchangeSpan(spans, 'tools/call list_graphs');
    assert.equal(refused.attributes['mcpgw.refusal.code'], 'GW_ERR_TOOL_DENIED');
    assert.equal(refused.attributes['mcpgw.refusal.plugin'], 'tool-policy');
    assert.ok(!spans.some((s) => s.parentSpanId === refused.spanId && s.kind === CLIENT), 'a refused call never reached the upstream');
    assert.equal(spans.find((s) => s.parentSpanId === refused.spanId && s.name === 'request messages')?.attributes['mcpgw.refusal.code'], 'GW_ERR_TOOL_DENIED');
  });

  test('a 2026 request with its traceparent in params._meta (no header): parented there, and the upstream gets both carriers naming the gateway', async () => {
    const gw = await startTestGateway(gatewayYaml({ upstream: v2.url, endpoint: otlp.endpoint }), { env: GATEWAY_ENV });
    const ctx = clientContext();
    const before = otlp.spans.length;
    const c = await connectV2(`${gw.url()}/mcp`, { mode: 'pin-2026' });
    try {
      assert.equal(c.era, 'modern');
      await c.client.callTool({ name: 'echo', arguments: { text: 'meta traced' }, _meta: { traceparent: ctx.traceparent } });
    } finally {
      await c.close();
    }
    const seen = toolsCallBody(v2.seen.filter((r) => (r.body as { params?: { arguments?: { text?: string } } })?.params?.arguments?.text === 'meta traced'), 'echo');
    await gw.close();

    const spans = otlp.spans.slice(before);
    const call = exchangeSpan(spans, 'tools/call echo');
    assert.equal(call.traceId, ctx.traceId);
    assert.equal(call.parentSpanId, ctx.spanId, 'the exchange span is a child of the span named in _meta');
    assert.equal(call.attributes['mcp.protocol.version'], '2026-07-28');
    const upstream = spans.find((s) => s.parentSpanId === call.spanId && s.kind === CLIENT);
    assert.ok(upstream);
    const header = parseTraceparent(seen.headers.traceparent);
    assert.equal(header.parentId, upstream.spanId);
    const meta = (seen.body as { params: { _meta: Record<string, unknown> } }).params._meta;
    const inBody = parseTraceparent(meta.traceparent);
    assert.deepEqual(inBody, header, "the body's _meta names the gateway's call too");
    assert.equal(meta['io.modelcontextprotocol/protocolVersion'], '2026-07-28', 'the rest of _meta is untouched');
  });

  test('sampleRatio 0: a request without trace context is not recorded, yet the upstream gets a context marked not sampled; a sampled caller still is', async () => {
    const gw = await startTestGateway(gatewayYaml({ upstream: v2.url, endpoint: otlp.endpoint }).replace('serviceName: gw-under-test', 'sampleRatio: 0'), { env: GATEWAY_ENV });
    const before = otlp.spans.length;
    const ctx = clientContext();
    const unsampled = await connectClient(`${gw.url()}/mcp`, {});
    const sampled = await connectClient(`${gw.url()}/mcp`, { headers: { traceparent: ctx.traceparent } });
    try {
      await unsampled.callTool({ name: 'echo', arguments: { text: 'ratio zero' } });
      await sampled.callTool({ name: 'echo', arguments: { text: 'ratio zero, sampled caller' } });
    } finally {
      await Promise.all([unsampled.close(), sampled.close()]);
    }
    const withText = (t: string) => toolsCallBody(v2.seen.filter((r) => (r.body as { params?: { arguments?: { text?: string } } })?.params?.arguments?.text === t), 'echo');
    const notSampled = withText('ratio zero');
    const followed = withText('ratio zero, sampled caller');
    await gw.close();
    assert.equal(parseTraceparent(notSampled.headers.traceparent).flags, '00');
    assert.equal(parseTraceparent(followed.headers.traceparent).flags, '01');
    const spans = otlp.spans.slice(before);
    assert.ok(spans.length > 0 && spans.every((s) => s.traceId === ctx.traceId), "only the sampled caller's trace was exported");
  });

  test('an unreachable upstream: the upstream span and the exchange span are errors, with the refusal code', async () => {
    const closed = await startOtlpReceiver(); // a free port, closed again at once: nothing listens there
    const deadUrl = closed.endpoint.replace('/v1/traces', '/mcp');
    await closed.close();
    const gw = await startTestGateway(gatewayYaml({ upstream: deadUrl, endpoint: otlp.endpoint }).replace('modern: { url:', 'modern: { era: "2025", url:'), { env: GATEWAY_ENV });
    const before = otlp.spans.length;
    const ctx = clientContext();
    const res = await fetch(`${gw.url()}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', traceparent: ctx.traceparent },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: {} } }),
    });
    assert.equal(res.status, 502);
    await res.text();
    await gw.close();
    const spans = otlp.spans.slice(before);
    const call = exchangeSpan(spans, 'tools/call echo');
    assert.equal(call.status, 2, 'the exchange span is an error');
    assert.equal(call.attributes['mcpgw.refusal.code'], 'GW_ERR_UPSTREAM_UNREACHABLE');
    assert.equal(call.attributes['error.type'], 'GW_ERR_UPSTREAM_UNREACHABLE');
    assert.equal(call.attributes['jsonrpc.request.id'], '7');
    const upstream = spans.find((s) => s.parentSpanId === call.spanId && s.kind === CLIENT);
    assert.equal(upstream?.status, 2, 'the upstream span is an error');
    assert.equal(upstream?.attributes['error.type'], 'ECONNREFUSED');
  });

  for (const mode of ['off', 'absent'] as const) {
    test(`tracing ${mode === 'off' ? 'configured with enabled: false' : 'not configured'}: the client's trace context passes through unchanged, nothing is exported`, async () => {
      const gw = await startTestGateway(gatewayYaml({ upstream: v2.url, endpoint: otlp.endpoint, tracing: mode, plugins: FULL }), { env: GATEWAY_ENV });
      const ctx = clientContext();
      const posts = otlp.posts.length;
      const client = await connectClient(`${gw.url()}/mcp`, { bearer: acme, headers: { traceparent: ctx.traceparent, tracestate: 'vendor=abc' } });
      try {
        await client.callTool({ name: 'echo', arguments: { text: `untraced ${mode}` } });
      } finally {
        await client.close();
      }
      const seen = toolsCallBody(v2.seen.filter((r) => (r.body as { params?: { arguments?: { text?: string } } })?.params?.arguments?.text === `untraced ${mode}`), 'echo');
      await gw.close();
      assert.equal(seen.headers.traceparent, ctx.traceparent);
      assert.equal(seen.headers.tracestate, 'vendor=abc');
      assert.equal(otlp.posts.length, posts, 'no export request was made');
    });
  }
});

describe('replaceMetaTraceparent', () => {
  const old = '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01';
  const next = '00-0af7651916cd43dd8448eb211c80319c-1111111111111111-01';
  test('replaces the one occurrence, keeping the body length', () => {
    const body = Buffer.from(JSON.stringify({ id: 12345678901234567890n.toString(), params: { _meta: { traceparent: old } } }));
    const out = replaceMetaTraceparent(body, old, next);
    assert.ok(out);
    assert.equal(out.length, body.length);
    assert.equal(out.toString(), body.toString().replace(old, next));
  });
  test('leaves an ambiguous body alone (the value also appears elsewhere)', () => {
    const body = Buffer.from(JSON.stringify({ params: { arguments: { echo: old }, _meta: { traceparent: old } } }));
    assert.equal(replaceMetaTraceparent(body, old, next), undefined);
  });
});

describe('readMcpRequest', () => {
  test('client-chosen names are bounded: a span keeps them until it is exported', () => {
    const long = 'x'.repeat(100_000);
    const body = (method: string, params: Record<string, unknown>) => Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: long, method, params }));
    const tool = readMcpRequest('POST', {}, body('tools/call', { name: long }));
    assert.equal(tool.tool, long.slice(0, 256));
    assert.equal(tool.requestId?.length, 128);
    assert.equal(readMcpRequest('POST', {}, body('resources/read', { uri: long })).resourceUri?.length, 1024);
    assert.equal(readMcpRequest('POST', {}, body(long, {})).method?.length, 128);
    assert.equal(readMcpRequest('POST', { 'mcp-protocol-version': long }, undefined).protocolVersion?.length, 64);
    const short = readMcpRequest('POST', {}, Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'prompts/get', params: { name: 'p' } })));
    assert.deepEqual(short, { method: 'prompts/get', requestId: '3', prompt: 'p' });
  });
});
