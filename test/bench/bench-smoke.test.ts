/**
 * `npm run bench` in a tiny configuration (BENCH_QUICK=1): it must start every process, measure every
 * row it can, print the tables and write its JSON, then exit cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('BENCH_QUICK=1 runs the harness end to end and prints the tables', { timeout: 120_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-bench-test-'));
  try {
    const out = path.join(dir, 'results.json');
    const child = spawn(process.execPath, [path.join(root, 'bench', 'run.ts')], {
      cwd: root,
      env: { ...process.env, BENCH_QUICK: '1', BENCH_STREAMS: '20', BENCH_OUT: out },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, `bench exited with ${code}:\n${stderr}\n${stdout}`);

    assert.match(stdout, /Node v\d+\.\d+\.\d+ on .*, \d+ cores/);
    assert.match(stdout, /^row +req\/s +×naive +p50 ms +p99 ms +CPU µs\/req/m);
    assert.match(stdout, /^direct \(no proxy\) +[\d,]+ /m);
    assert.match(stdout, /^naive http-proxy-3 +[\d,]+ +1\.00 /m);
    assert.match(stdout, /SSE streams: per-event relay delay/);
    assert.match(stdout, /Targets \(ratios against baselines measured in this run\)/);

    const json = JSON.parse(await readFile(out, 'utf8')) as {
      node: string;
      machine: { cores: number };
      rows: Array<{ id: string; load?: { ok: number; non2xx: number; errors: number; reqPerSec: number; cpuUsPerReq: number }; note?: string }>;
      streams: Array<{ id: string; result?: { opened: number; failed: number; events: number; p99Ms: number } }>;
    };
    assert.equal(json.node, process.version);
    assert.ok(json.machine.cores >= 1);
    const row = (id: string) => json.rows.find((r) => r.id === id);
    for (const id of ['direct', 'naive']) {
      const load = row(id)?.load;
      assert.ok(load, `${id} measured`);
      assert.ok(load.ok > 0 && load.reqPerSec > 0, `${id} completed requests`);
      assert.equal(load.non2xx + load.errors, 0, `${id} had failures`);
      assert.ok(load.cpuUsPerReq > 0, `${id} CPU per request measured`);
    }
    const directStreams = json.streams.find((s) => s.id === 'direct')?.result;
    assert.ok(directStreams, 'direct SSE streams measured');
    assert.equal(directStreams.opened, 20);
    assert.equal(directStreams.failed, 0);
    assert.ok(directStreams.events > 0);

    // Once the gateway exists, its no-plugin row must be measured, not skipped.
    if (existsSync(path.join(root, 'gateway', 'main.ts'))) {
      const gw = row('gateway');
      assert.ok(gw?.load, `gateway row skipped: ${gw?.note}`);
      assert.ok(gw.load.ok > 0);
      assert.equal(gw.load.non2xx + gw.load.errors, 0, 'gateway row had failures');
      assert.match(stdout, /^gateway \(no plugins\) +[\d,]+ /m);
      const gwStreams = json.streams.find((s) => s.id === 'gateway')?.result;
      assert.ok(gwStreams, 'gateway SSE streams measured');
      assert.equal(gwStreams.opened, 20);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
