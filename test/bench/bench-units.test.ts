/**
 * The bench's own arithmetic and configuration: percentiles, medians over rounds, target verdicts,
 * /proc readings and the generated nginx config. The end-to-end run is in bench-smoke.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentile, type LoadResult } from '../../bench/load.ts';
import { evaluateTargets, medianLoad, table, type RowOutcome, type SectionOutcomes } from '../../bench/report.ts';
import { cpuMicros, readyOrStop, rssBytes, spawnChild, waitForLine } from '../../bench/processes.ts';
import { checkLargeAnswer, type LargeEventResult } from '../../bench/large-event.ts';
import { ephemeralPorts, MAX_STREAMS, openFileLimit, probeMemory, streamBudget, type ManyStreamsResult, type MemSample } from '../../bench/many-streams.ts';
import { nginxConfig } from '../../bench/nginx.ts';
import { gatewayYaml, mintCredentials, startGatewayChild } from '../../bench/gateway-rows.ts';
import { GatewayConfigSchema } from '../../config/schema.ts';
import { parse } from 'yaml';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench');

const load = (over: Partial<LoadResult>): LoadResult => ({
  responses: 1000, ok: 1000, non2xx: 0, errors: 0, reqPerSec: 1000, p50Ms: 1, p99Ms: 2, cpuUsPerReq: 100, peakRssBytes: 50e6, ...over,
});

test('percentile uses the nearest rank', () => {
  const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(sorted, 0.5), 50);
  assert.equal(percentile(sorted, 0.99), 99);
  assert.equal(percentile(sorted, 1), 100);
  assert.equal(percentile([7], 0.99), 7);
  assert.ok(Number.isNaN(percentile([], 0.5)));
});

test('medianLoad takes the median of each figure and the worst error counts', () => {
  const m = medianLoad([load({ reqPerSec: 10, cpuUsPerReq: 300, non2xx: 1 }), load({ reqPerSec: 30, cpuUsPerReq: 100 }), load({ reqPerSec: 20, cpuUsPerReq: 200, errors: 4 })]);
  assert.equal(m.reqPerSec, 20);
  assert.equal(m.cpuUsPerReq, 200);
  assert.equal(m.non2xx, 1);
  assert.equal(m.errors, 4);
  assert.equal(medianLoad([load({ reqPerSec: 10 }), load({ reqPerSec: 20 })]).reqPerSec, 15);
});

test('targets compare each row with its baseline from the same run', () => {
  const rows: RowOutcome[] = [
    { id: 'naive', label: 'naive', load: load({ reqPerSec: 1000, cpuUsPerReq: 100 }) },
    { id: 'gateway', label: 'gw', load: load({ reqPerSec: 950, cpuUsPerReq: 105 }) },
    { id: 'gateway-audit', label: 'audit', load: load({ cpuUsPerReq: 125 }) },
    { id: 'gateway-auth', label: 'auth', load: load({ cpuUsPerReq: 105 * 1.04 }) },
    { id: 'gateway-full', label: 'full', load: load({ cpuUsPerReq: 105 * 1.4 }) },
  ];
  const verdicts = evaluateTargets(rows, [], { idleRssBytes: 70e6 });
  const byWhat = (s: string) => verdicts.find((v) => v.what.includes(s))!;
  assert.equal(byWhat('no plugins) req/s').pass, true);
  assert.equal(byWhat('no plugins) CPU').pass, true);
  assert.equal(byWhat('audit').pass, false, '125 / 105 = 1.19× the no-plugin route > 1.15×');
  assert.equal(byWhat('audit').limit, 1.15);
  assert.equal(byWhat('token+jwt').pass, true);
  assert.equal(byWhat('full pipeline').pass, false, '1.4× > 1.3×');
  assert.equal(byWhat('idle RSS').pass, false, '70 MB > 60 MB');
  assert.equal(verdicts.length, 6);
});

test('targets whose rows were skipped are not evaluated', () => {
  const verdicts = evaluateTargets([{ id: 'naive', label: 'naive', load: load({}) }, { id: 'gateway', label: 'gw', note: 'skipped' }], [], {});
  assert.deepEqual(verdicts, []);
});

test('table aligns columns', () => {
  const t = table(['row', 'n'], [['a', '1'], ['long name', '1,000']]).split('\n');
  assert.equal(t[0], 'row            n');
  assert.equal(t[2], 'a              1');
  assert.equal(t[3], 'long name  1,000');
});

test('cpuMicros and rssBytes read /proc for a live process', () => {
  const before = cpuMicros(process.pid);
  const until = Date.now() + 60;
  while (Date.now() < until) { /* burn CPU so user time grows by at least one tick */ }
  assert.ok(cpuMicros(process.pid) > before);
  assert.ok(rssBytes(process.pid) > 10e6);
});

test('the nginx config stays inside its temp folder and does not buffer', () => {
  const conf = nginxConfig({ dir: '/tmp/x', port: 8080, upstreamPort: 9000 });
  assert.match(conf, /daemon off;/);
  assert.match(conf, /proxy_buffering off;/);
  assert.match(conf, /listen 127\.0\.0\.1:8080;/);
  assert.match(conf, /server 127\.0\.0\.1:9000;/);
  for (const m of conf.matchAll(/(?:pid|error_log|_temp_path) (\S+?);?$/gm)) assert.ok(m[1].startsWith('/tmp/x/'), m[1]);
});

test('the generated gateway.yaml satisfies the gateway schema', () => {
  const yaml = gatewayYaml({ port: 4321, upstreamUrl: 'http://127.0.0.1:1234/mcp', plugins: [] });
  const parsed = GatewayConfigSchema.safeParse(parse(yaml));
  assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
  assert.equal(parsed.data!.admin.enabled, false);
  assert.equal(parsed.data!.listeners[0].port, 4321);

  // The large-event row's route allows its event (route keys pass through, checked by the same schema).
  const large = GatewayConfigSchema.safeParse(parse(gatewayYaml({ port: 4321, upstreamUrl: 'http://127.0.0.1:1234/mcp', plugins: [], route: { maxResponseBytes: 21_000_000 } })));
  assert.ok(large.success, JSON.stringify(large.error?.issues));
  assert.equal(large.data!.routes[0].maxResponseBytes, 21_000_000);
});

test('a gateway row whose config is refused fails with the gateway\'s own message', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-bench-unit-'));
  try {
    const bogus = { id: 'bogus', label: 'bogus', needs: [], auth: false, plugins: () => [{ type: 'no-such-plugin' }] };
    await assert.rejects(
      startGatewayChild(bogus, dir, 'http://127.0.0.1:9/mcp', await mintCredentials()),
      (err: Error) => /exited \(1\) before listening/.test(err.message) && /no-such-plugin/.test(err.message),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the audit target compares audit alone with the no-plugin route, not with the naive proxy', () => {
  const rows: RowOutcome[] = [
    { id: 'naive', label: 'naive', load: load({ cpuUsPerReq: 50 }) },
    { id: 'gateway', label: 'gw', load: load({ cpuUsPerReq: 100 }) },
    { id: 'gateway-audit', label: 'audit', load: load({ cpuUsPerReq: 114 }) },
  ];
  const audit = evaluateTargets(rows, [], {}).find((v) => v.what.includes('audit'))!;
  assert.equal(audit.pass, true, '1.14× the no-plugin route, though 2.28× naive');
  assert.ok(Math.abs(audit.actual - 1.14) < 1e-9);
});

const small = (over: Partial<LargeEventResult['small']> = {}): LargeEventResult['small'] => ({
  sent: 500, ok: 500, failed: 0, failures: {}, p50Ms: 2, p99Ms: 10, maxMs: 20, ...over,
});
const large = (over: Partial<LargeEventResult> = {}): LargeEventResult => ({
  events: 5, failures: {}, bytesPerEvent: 20e6, medianMs: 100, minMs: 90, maxMs: 120, cpuMsPerEvent: 50, peakRssBytes: 2e8, small: small(), ...over,
});
const mem = (rss: number, heapUsed: number): MemSample => ({ rss, heapUsed, heapTotal: heapUsed, external: 0, arrayBuffers: 0, gc: true });
const many = (over: Partial<ManyStreamsResult> = {}): ManyStreamsResult => ({
  requested: 2000, opened: 2000, failed: 0, failures: {}, openMs: 2000, before: mem(1e8, 2e7), open: mem(1.3e8, 5e7), closed: mem(1.1e8, 2e7),
  rssPerStream: 15_000, heapPerStream: 15_000, externalPerStream: 0, heapRetainedPerStream: 0, ...over,
});

test('large-event targets: the hooked route against the naive proxy, and the small requests beside it', () => {
  const sections: SectionOutcomes = {
    largeEvents: [
      { id: 'direct', label: 'direct', result: large({ medianMs: 40 }) },
      { id: 'naive', label: 'naive', result: large({ medianMs: 100 }) },
      { id: 'gateway', label: 'gw', result: large({ medianMs: 500 }) },
      { id: 'gateway-full', label: 'full', hooks: true, result: large({ medianMs: 190, small: small({ p99Ms: 49.9 }) }) },
    ],
  };
  const verdicts = evaluateTargets([], [], {}, sections);
  assert.equal(verdicts.length, 2, 'only the hooked row has targets');
  const [time, p99] = verdicts;
  assert.ok(Math.abs(time.actual - 1.9) < 1e-9, 'against naive, not direct');
  assert.equal(time.pass, true);
  assert.equal(p99.pass, true);
  assert.equal(p99.unit, 'ms');

  const slow = evaluateTargets([], [], {}, { largeEvents: [sections.largeEvents![1], { id: 'gateway-full', label: 'full', hooks: true, result: large({ medianMs: 201, small: small({ p99Ms: 50 }) }) }] });
  assert.deepEqual(slow.map((v) => v.pass), [false, false], '2.01× and p99 = 50 ms (the target is strictly below)');

  const broken = evaluateTargets([], [], {}, { largeEvents: [sections.largeEvents![1], { id: 'gateway-full', label: 'full', hooks: true, result: large({ medianMs: 110, failures: { 'HTTP 502': 1 }, small: small({ failed: 3, failures: { timeout: 3 } }) }) }] });
  assert.deepEqual(broken.map((v) => v.pass), [false, false], 'failed events or small requests are a miss whatever the figures');
  assert.match(broken[0].what, /1 event\(s\) FAILED/);

  assert.equal(evaluateTargets([], [], {}, { largeEvents: [sections.largeEvents![3]] }).length, 1, 'without a naive row only the p99 is judged');
});

test('many-streams targets: RSS per stream on the gateway rows only, a failed stream is a miss', () => {
  const verdicts = evaluateTargets([], [], {}, {
    manyStreams: [
      { id: 'naive', label: 'naive', result: many({ rssPerStream: 40_000 }) },
      { id: 'gateway', label: 'gw', gateway: true, result: many({ rssPerStream: 19_000 }) },
      { id: 'gateway-full', label: 'full', gateway: true, result: many({ rssPerStream: 21_000 }) },
      { id: 'gateway-x', label: 'broken', gateway: true, result: many({ rssPerStream: 1_000, opened: 1990, failed: 10 }) },
      { id: 'gateway-y', label: 'skipped', gateway: true, note: 'did not start' },
    ],
  });
  assert.deepEqual(verdicts.map((v) => [v.unit, v.limit, v.pass]), [['KB', 20, true], ['KB', 20, false], ['KB', 20, false]]);
  assert.match(verdicts[0].what, /naive proxy 40\.0 KB/);
  assert.match(verdicts[2].what, /10 FAILED to open/);
});

test('the stream count is lowered to what the open-file limit and the port range allow', () => {
  assert.deepEqual(streamBudget(2000, 20_000, 28_232), { streams: 2000, note: undefined });
  const byFds = streamBudget(2000, 1024, 28_232);
  assert.equal(byFds.streams, 384);
  assert.match(byFds.note!, /ulimit -n 1024/);
  const byPorts = streamBudget(20_000, Infinity, 28_232);
  assert.equal(byPorts.streams, 12_068);
  assert.match(byPorts.note!, /ephemeral port range/);
  assert.equal(streamBudget(1e6, undefined, undefined).streams, MAX_STREAMS);
  assert.equal(streamBudget(100, 100, undefined).streams, 0);
});

test('open-file limit and port range are read from /proc', () => {
  assert.equal(openFileLimit('Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n'), 1024);
  assert.equal(openFileLimit('Max open files            unlimited            unlimited            files\n'), Infinity);
  assert.equal(openFileLimit(''), undefined);
  assert.equal(ephemeralPorts('32768\t60999\n'), 28_232);
  assert.equal(ephemeralPorts(''), undefined);
  assert.ok((openFileLimit() ?? 1) > 0);
});

test('a large answer must be the whole event that was asked for', () => {
  const ok = { status: 200, contentType: 'text/event-stream', bytes: 1_000_100, head: 'event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"graph social: large result\\n(:Person', tail: '\n\n', ms: 5 };
  assert.equal(checkLargeAnswer(ok, 1_000_000, 'social'), undefined);
  assert.match(checkLargeAnswer({ ...ok, status: 502, head: '{"error":1}' }, 1_000_000, 'social')!, /HTTP 502/);
  assert.match(checkLargeAnswer({ ...ok, contentType: 'application/json' }, 1_000_000, 'social')!, /content-type/);
  assert.match(checkLargeAnswer({ ...ok, bytes: 999 }, 1_000_000, 'social')!, /cut short/);
  assert.match(checkLargeAnswer({ ...ok, tail: '}\n' }, 1_000_000, 'social')!, /not terminated/);
  assert.match(checkLargeAnswer(ok, 1_000_000, 'bench_social')!, /unexpected event/, 'a graph name left prefixed is not the answer');
});

test('the upstream answers resultBytes with one data: line holding a valid JSON-RPC response, and idles streams when asked', { timeout: 30_000 }, async () => {
  const up = spawnChild({ name: 'upstream', command: process.execPath, args: [path.join(benchDir, 'upstream.ts')], env: { BENCH_SSE_INTERVAL_MS: '0' } });
  try {
    const port = await readyOrStop(up, waitForLine(up, /listening (\d+)/));
    const res = await fetch(`http://127.0.0.1:${port}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'big-1', method: 'tools/call', params: { name: 'query_graph', arguments: { graphName: 'social', resultBytes: 300_000 } } }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const text = await res.text();
    assert.ok(text.endsWith('\n\n'));
    const lines = text.slice(0, -2).split('\n');
    assert.deepEqual(lines.map((l) => l.slice(0, 6)), ['event:', 'data: '], 'one event, one data: line');
    const msg = JSON.parse(lines[1].slice(6)) as { id: string; result: { content: Array<{ text: string }> } };
    assert.equal(msg.id, 'big-1');
    assert.ok(msg.result.content[0].text.startsWith('graph social: large result\n(:Person {id: 0, name: "person 0"'));
    assert.ok(lines[1].length >= 300_000 && lines[1].length < 301_000, `data line of ${lines[1].length} bytes`);

    // Idle mode: one event at once, then nothing.
    const ac = new AbortController();
    const stream = await fetch(`http://127.0.0.1:${port}/mcp`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
    const reader = stream.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.equal(first, 'data: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n');
    const next = await Promise.race([reader.read().then(() => 'more'), new Promise((r) => setTimeout(() => r('idle'), 300))]);
    assert.equal(next, 'idle');
    ac.abort();
  } finally {
    await up.stop();
  }
});

test('the memory probe answers SIGUSR2 with a reading taken after a full collection', { timeout: 30_000 }, async () => {
  const child = spawnChild({
    name: 'probed',
    command: process.execPath,
    args: ['--expose-gc', '--import', pathToFileURL(path.join(benchDir, 'mem-probe.ts')).href, '-e', 'globalThis.keep = Array.from({ length: 1e5 }, (_, i) => ({ i })); console.log("ready"); setInterval(() => {}, 1000)'],
  });
  try {
    await readyOrStop(child, waitForLine(child, /ready/));
    const m = await probeMemory(child);
    assert.equal(m.gc, true);
    assert.ok(m.heapUsed > 2e6 && m.heapUsed <= m.heapTotal, JSON.stringify(m));
    assert.ok(m.rss > m.heapUsed);
    assert.ok((await probeMemory(child)).heapUsed > 2e6, 'answers again');
  } finally {
    await child.stop();
  }
});
