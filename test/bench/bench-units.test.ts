/**
 * The bench's own arithmetic and configuration: percentiles, medians over rounds, target verdicts,
 * /proc readings and the generated nginx config. The end-to-end run is in bench-smoke.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentile, type LoadResult } from '../../bench/load.ts';
import { evaluateTargets, medianLoad, table, type RowOutcome } from '../../bench/report.ts';
import { cpuMicros, rssBytes } from '../../bench/processes.ts';
import { nginxConfig } from '../../bench/nginx.ts';
import { gatewayYaml, mintCredentials, startGatewayChild } from '../../bench/gateway-rows.ts';
import { GatewayConfigSchema } from '../../config/schema.ts';
import { parse } from 'yaml';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

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
  assert.equal(byWhat('audit').pass, false, '1.25× > 1.2×');
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
