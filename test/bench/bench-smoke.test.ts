/**
 * `npm run bench` in a tiny configuration (BENCH_QUICK=1): it must start every process, measure every
 * row it can, print the tables and write its JSON, then exit cleanly. The large-event and many-streams
 * rows run too, small (a 1 MB event, 60 streams), so that they cannot rot.
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

test('BENCH_QUICK=1 runs the harness end to end and prints the tables', { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-bench-test-'));
  try {
    const out = path.join(dir, 'results.json');
    const child = spawn(process.execPath, [path.join(root, 'bench', 'run.ts')], {
      cwd: root,
      env: { ...process.env, BENCH_QUICK: '1', BENCH_STREAMS: '20', BENCH_MANY_STREAMS: '60', BENCH_OUT: out },
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
    assert.match(stdout, /^Large SSE event: one 1\.0 MB data: line/m);
    assert.match(stdout, /^Idle SSE streams held open at once/m);

    const json = JSON.parse(await readFile(out, 'utf8')) as {
      node: string;
      machine: { cores: number };
      rows: Array<{ id: string; load?: { ok: number; non2xx: number; errors: number; reqPerSec: number; cpuUsPerReq: number }; note?: string }>;
      streams: Array<{ id: string; result?: { opened: number; failed: number; events: number; p99Ms: number } }>;
      sections: {
        largeEvents: Array<{ id: string; hooks?: boolean; note?: string; result?: { events: number; failures: Record<string, number>; medianMs: number; small: { sent: number; failed: number; p99Ms: number } } }>;
        manyStreams: Array<{ id: string; note?: string; result?: { opened: number; failed: number; heapPerStream: number; rssPerStream: number; before: { gc: boolean } } }>;
      };
      targets: Array<{ what: string }>;
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

    // The large-event and many-streams rows, at least on their baselines.
    const largeEvent = (id: string) => json.sections.largeEvents.find((l) => l.id === id);
    const manyStreams = (id: string) => json.sections.manyStreams.find((m) => m.id === id);
    for (const id of ['direct', 'naive']) {
      const r = largeEvent(id)?.result;
      assert.ok(r, `${id} large event measured: ${largeEvent(id)?.note}`);
      assert.ok(r.events >= 2, `${id} relayed its large events`);
      assert.deepEqual(r.failures, {});
      assert.ok(r.small.sent > 0 && r.small.failed === 0, `${id} small requests`);
      assert.ok(r.medianMs > 0 && r.small.p99Ms > 0);
    }
    const naiveMany = manyStreams('naive')?.result;
    assert.ok(naiveMany, `naive many-streams measured: ${manyStreams('naive')?.note}`);
    assert.equal(naiveMany.opened, 60);
    assert.equal(naiveMany.failed, 0);
    assert.equal(naiveMany.before.gc, true, 'the memory probe collected garbage');
    assert.ok(naiveMany.heapPerStream > 0);

    // Once the gateway exists, its no-plugin row must be measured, not skipped.
    if (existsSync(path.join(root, 'gateway', 'main.ts'))) {
      const gw = row('gateway');
      assert.ok(gw?.load, `gateway row skipped: ${gw?.note}`);
      assert.ok(gw.load.ok > 0);
      assert.equal(gw.load.non2xx + gw.load.errors, 0, 'gateway row had failures');
      assert.match(stdout, /^gateway \(no plugins\) +[\d,]+ /m);

      // The federation row: initialized once, then measured on its session like the other rows.
      const fed = row('federation');
      assert.ok(fed?.load, `federation row skipped: ${fed?.note}`);
      assert.ok(fed.load.ok > 0 && fed.load.cpuUsPerReq > 0);
      assert.equal(fed.load.non2xx + fed.load.errors, 0, 'federation row had failures');
      assert.match(stdout, /^federation \(one member\) +[\d,]+ /m);
      assert.match(stdout, /^ {2}(PASS|MISS) {2}federation \(one member\) CPU\/req vs no-plugin route: [\d.]+× \(target ≤ 1\.5×\)$/m);
      const gwStreams = json.streams.find((s) => s.id === 'gateway')?.result;
      assert.ok(gwStreams, 'gateway SSE streams measured');
      assert.equal(gwStreams.opened, 20);

      // The hooked route relays the event (whatever its speed) and holds the streams.
      const hooked = json.sections.largeEvents.find((l) => l.hooks);
      assert.ok(hooked?.result && hooked.result.events > 0, `hooked gateway route large event: ${hooked?.note}`);
      for (const id of ['gateway', hooked.id]) {
        const m = manyStreams(id);
        assert.ok(m?.result, `${id} many-streams measured: ${m?.note}`);
        assert.equal(m.result.opened, 60);
      }
      assert.ok(json.targets.some((t) => /RSS per open idle SSE stream/.test(t.what)));
      assert.ok(json.targets.some((t) => /small requests p99 during the large events/.test(t.what)));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
