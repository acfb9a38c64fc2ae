/**
 * Process lifecycle behind a stdio upstream: idle reaping, limits, crash and restart, per-session processes,
 * request timeouts, stderr logging, and shutdown (SIGTERM, then SIGKILL after the grace period).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { StdioUpstreamSchema } from '../../config/schema.ts';
import { upstreamFor, captureLog, children, connect, dispatchRaw, groupMembers, messagesOf, textOf, waitFor, refusalOf } from './fixtures.ts';

const FAKE = path.join(import.meta.dirname, 'fake-stdio-server.ts');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('stdio upstream lifecycle', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-stdio-life-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a process without sessions is stopped after idleTimeout; the next session starts a new one', async () => {
    const upstream = upstreamFor({ command: 'node', args: [FAKE], idleTimeout: '300ms' }, { configDir: dir });
    try {
      const s = await connect(upstream, 'idle');
      const pid = upstream.processes()[0].pid;
      assert.ok(alive(pid));
      await s.transport.terminateSession();
      await s.client.close();
      assert.equal(upstream.processes()[0].sessions, 0);
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(alive(pid), 'still alive within the idle timeout');
      await waitFor('idle process stopped', () => upstream.processes().length === 0 && !alive(pid));
      assert.ok(!children().pids.includes(pid));

      const again = await connect(upstream, 'idle');
      assert.notEqual(upstream.processes()[0].pid, pid);
      await again.client.close();
    } finally {
      await upstream.close();
    }
  });

  test('an abandoned session (no DELETE) expires after idleTimeout and releases its process', async () => {
    const upstream = upstreamFor({ command: 'node', args: [FAKE], idleTimeout: '200ms' }, { configDir: dir });
    try {
      const s = await connect(upstream, 'abandon');
      await s.client.callTool({ name: 'echo', arguments: { text: 'x' } });
      await s.client.close(); // closes the GET stream, sends no DELETE
      await waitFor('session expired and process stopped', () => upstream.processes().length === 0 && upstream.sessions().length === 0);
    } finally {
      await upstream.close();
    }
  });

  test('a session is idle only without an exchange in progress: a call longer than idleTimeout completes', async () => {
    const upstream = upstreamFor({ command: 'node', args: [FAKE], idleTimeout: '200ms' }, { configDir: dir });
    try {
      // No standalone GET stream: the call's own stream is the only exchange in progress.
      const init = await dispatchRaw(upstream, {
        tenant: 'long',
        body: { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } },
      });
      const headers = { 'mcp-session-id': String(init.headers['mcp-session-id']) };
      const call = (id: number, name: string, args: Record<string, unknown>) =>
        dispatchRaw(upstream, { tenant: 'long', headers, body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } } });
      // Closing the session mid-call would end the stream without the answer.
      assert.equal(textOf(messagesOf(await call(1, 'sleep', { ms: 800 }))[0]?.result), 'slept');
      // Then, with nothing in progress, it expires.
      await waitFor('the idle session closed', () => upstream.sessions().length === 0);
      assert.equal((await call(2, 'echo', { text: 'gone' })).status, 404);
    } finally {
      await upstream.close();
    }
  });

  test('process limits: per tenant and in total, a clear GW_ERR_PROCESS_LIMIT error; idle processes make room', async () => {
    const upstream = upstreamFor(
      { command: 'node', args: [FAKE], poolKey: '{tenant}/{sub}', maxProcesses: 2, maxProcessesPerTenant: 1, idleTimeout: '1h' },
      { configDir: dir },
    );
    try {
      const a1 = await connect(upstream, 'lim-a', 'one');
      const a1b = await connect(upstream, 'lim-a', 'one'); // same pool key: shares, no new process
      await assert.rejects(connect(upstream, 'lim-a', 'two'), (err: Error) => {
        assert.match(err.message, /GW_ERR_PROCESS_LIMIT/);
        assert.match(err.message, /for this tenant/);
        return true;
      });
      const b1 = await connect(upstream, 'lim-b', 'one');
      await assert.rejects(connect(upstream, 'lim-c', 'one'), /maximum of 2 processes.*GW_ERR_PROCESS_LIMIT/);
      assert.equal(upstream.processes().length, 2);

      // The refusal is a JSON-RPC error carrying the initialize request's id, status 503.
      const raw = await dispatchRaw(upstream, {
        tenant: 'lim-c',
        sub: 'one',
        body: { jsonrpc: '2.0', id: 'init-9', method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'r', version: '1' } } },
      });
      assert.equal(raw.status, 503);
      const body = await refusalOf(raw);
      assert.equal(body.id, 'init-9');
      assert.equal(body.error.data.code, 'GW_ERR_PROCESS_LIMIT');

      // b's process goes idle (idleTimeout is an hour): a new pool key may take its slot at once.
      await b1.transport.terminateSession();
      await b1.client.close();
      const c1 = await connect(upstream, 'lim-c', 'one');
      assert.deepEqual(upstream.processes().map((p) => p.pool).sort(), ['lim-a/one', 'lim-c/one']);
      for (const s of [a1, a1b, c1]) await s.client.close();
    } finally {
      await upstream.close();
    }
  });

  test('a crash answers in-flight requests with GW_ERR_UPSTREAM_CRASHED; the next call restarts it', async () => {
    const cap = captureLog();
    const upstream = upstreamFor({ command: 'node', args: [FAKE] }, { configDir: dir, log: cap.log });
    try {
      const s = await connect(upstream, 'crash');
      const pid = upstream.processes()[0].pid;
      const inFlight = s.client.callTool({ name: 'sleep', arguments: { ms: 5000 } });
      await waitFor('request in flight', () => upstream.processes()[0].inFlight === 1);
      process.kill(pid, 'SIGKILL');
      await assert.rejects(inFlight, (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal((err.data as { code: string }).code, 'GW_ERR_UPSTREAM_CRASHED');
        return true;
      });
      assert.equal(upstream.processes()[0].state, 'crashed');
      assert.equal(upstream.processes()[0].pid, 0);

      // Same session, next use: a new process, re-initialized by the upstream (after a short backoff).
      const started = Date.now();
      const r = await s.client.callTool({ name: 'stats', arguments: {} });
      assert.ok(Date.now() - started >= 400, 'restart waited for the backoff');
      const stats = JSON.parse(textOf(r));
      assert.notEqual(stats.pid, pid);
      assert.equal(stats.initializes, 1);
      const info = upstream.processes()[0];
      assert.equal(info.restarts, 1);
      assert.equal(info.pid, stats.pid);
      assert.equal(info.state, 'running');
      assert.ok(!children().pids.includes(pid), 'the killed child was reaped');
      assert.ok(cap.lines().some((l) => l.msg === 'upstream process exited unexpectedly' && l.pool === 'crash'));
      await s.client.close();
    } finally {
      await upstream.close();
    }
  });

  test('a crash is noticed even when a grandchild keeps the pipes open; the whole group is ended', async () => {
    // `exec` makes the server the shell's pid; the backgrounded sleep inherits its stdout and stderr.
    const upstream = upstreamFor({ command: 'sh', args: ['-c', `sleep 60 & exec "${process.execPath}" "${FAKE}"`] }, { configDir: dir });
    try {
      const s = await connect(upstream, 'group');
      const pid = upstream.processes()[0].pid;
      assert.equal(groupMembers(pid).length, 2, 'the server and the sleep share the process group');
      const inFlight = s.client.callTool({ name: 'sleep', arguments: { ms: 10_000 } });
      await waitFor('request in flight', () => upstream.processes()[0].inFlight === 1);
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      await assert.rejects(inFlight, (err: unknown) => err instanceof McpError && (err.data as { code: string }).code === 'GW_ERR_UPSTREAM_CRASHED');
      assert.ok(Date.now() - killedAt < 5000, 'noticed without waiting for the grandchild');
      await waitFor('the grandchild (sleep) is gone too', () => groupMembers(pid).length === 0 && children().pids.length === 0);
      await s.client.close();
    } finally {
      await upstream.close();
    }
  });

  // The grandchild holds no pipe of the server, so nothing waits for it: only the process group reaches it.
  const detachedSleep = (ignoreTerm: boolean) =>
    `(${ignoreTerm ? 'trap "" TERM; ' : ''}exec sleep 60) </dev/null >/dev/null 2>&1 & exec "${process.execPath}" "${FAKE}"`;

  test('a crash ends the rest of the process group, even a grandchild that holds no pipe', async () => {
    const upstream = upstreamFor({ command: 'sh', args: ['-c', detachedSleep(false)] }, { configDir: dir });
    try {
      const s = await connect(upstream, 'orphan');
      const pid = upstream.processes()[0].pid;
      await waitFor('the grandchild runs in the group', () => groupMembers(pid).length === 2);
      process.kill(pid, 'SIGKILL');
      await waitFor('the server is gone', () => upstream.processes()[0].state === 'crashed');
      await waitFor('the grandchild is gone too', () => groupMembers(pid).length === 0);
      await s.client.close();
    } finally {
      await upstream.close();
    }
  });

  test('a session end stops its per-session process group, even a grandchild that ignores SIGTERM (SIGKILL after grace)', async () => {
    const upstream = upstreamFor(
      { command: 'sh', args: ['-c', detachedSleep(true)], mode: 'per-session', shutdownGrace: '300ms' },
      { configDir: dir },
    );
    try {
      const s = await connect(upstream, 'stubborn-gc');
      const pid = upstream.processes()[0].pid;
      await waitFor('the grandchild runs in the group', () => groupMembers(pid).length === 2);
      await s.transport.terminateSession();
      await waitFor('the whole group is gone', () => groupMembers(pid).length === 0 && upstream.processes().length === 0);
      await s.client.close();
    } finally {
      await upstream.close();
    }
  });

  test('close() returns once the whole process group is gone, a grandchild that ignores SIGTERM included', async () => {
    const upstream = upstreamFor({ command: 'sh', args: ['-c', detachedSleep(true)], shutdownGrace: '300ms' }, { configDir: dir });
    const s = await connect(upstream, 'close-gc');
    const pid = upstream.processes()[0].pid;
    await waitFor('the grandchild runs in the group', () => groupMembers(pid).length === 2);
    await upstream.close();
    // SIGKILL was sent before close() returned; the kernel finishes the kill asynchronously.
    await waitFor('the whole group is gone', () => groupMembers(pid).length === 0);
    await s.client.close().catch(() => {});
  });

  test('stderr is logged with the pool key', async () => {
    const cap = captureLog();
    const upstream = upstreamFor({ command: 'node', args: [FAKE] }, { configDir: dir, log: cap.log });
    try {
      const s = await connect(upstream, 'logs');
      await waitFor('stderr line logged', () => cap.lines().some((l) => typeof l.stderr === 'string' && /fake-stdio-server ready/.test(l.stderr)));
      const line = cap.lines().find((l) => typeof l.stderr === 'string' && /fake-stdio-server ready/.test(l.stderr as string))!;
      assert.equal(line.pool, 'logs');
      assert.equal(line.upstream, 'test');
      await s.client.close();
    } finally {
      await upstream.close();
    }
  });

  test('non-JSON lines on stdout: a rate-limited warning carrying the count, not one per line', async () => {
    const cap = captureLog();
    const upstream = upstreamFor({ command: 'node', args: [FAKE] }, { configDir: dir, log: cap.log });
    const s = await connect(upstream, 'garbage');
    // The answer comes after the garbage on the same pipe: every line was read when it arrives.
    assert.equal(textOf(await s.client.callTool({ name: 'garbage', arguments: { lines: 10_000 } })), 'ok');
    assert.equal(textOf(await s.client.callTool({ name: 'echo', arguments: { text: 'still serving' } })), 'still serving');
    await s.client.close();
    await upstream.close(); // the process's exit reports what was not reported yet
    const warnings = cap.lines().filter((l) => l.level === 40 && /non-JSON/.test(String(l.msg)));
    assert.ok(warnings.length >= 1 && warnings.length <= 3, `a handful of warnings, not one per line (saw ${warnings.length})`);
    assert.equal(warnings.reduce((n, w) => n + Number(w.dropped), 0), 10_000, 'together they count every line');
    assert.ok(warnings.some((w) => Number(w.dropped) > 1), 'one warning carries a count');
    assert.ok(warnings.every((w) => w.pool === 'garbage' && typeof w.line === 'string' && String(w.line).length <= 200));
  });

  test('per-session mode: one process per session, stopped when its session ends; initialize forwarded', async () => {
    const upstream = upstreamFor({ command: 'node', args: [FAKE], mode: 'per-session' }, { configDir: dir });
    try {
      const a = await connect(upstream, 'ps');
      const b = await connect(upstream, 'ps');
      const procs = upstream.processes();
      assert.equal(procs.length, 2);
      assert.notEqual(procs[0].pid, procs[1].pid);
      const statsA = JSON.parse(textOf(await a.client.callTool({ name: 'stats', arguments: {} })));
      assert.equal(statsA.initializes, 1);
      const pidA = statsA.pid;
      await a.transport.terminateSession();
      await waitFor('per-session process stopped', () => !alive(pidA));
      assert.equal(upstream.processes().length, 1);
      await a.client.close();
      await b.client.close();
    } finally {
      await upstream.close();
    }
  });

  // The tool never answers, so the timeout is the only way out, however slow the machine; the start is
  // bounded by startTimeout (30s by default), not by the 200ms requestTimeout.
  test('requestTimeout answers GW_ERR_UPSTREAM_TIMEOUT and cancels the request upstream', async () => {
    const cap = captureLog();
    const upstream = upstreamFor({ command: 'node', args: [FAKE], requestTimeout: '200ms' }, { configDir: dir, log: cap.log });
    try {
      const s = await connect(upstream, 'slow');
      await assert.rejects(s.client.callTool({ name: 'hang', arguments: {} }), (err: unknown) => {
        assert.ok(err instanceof McpError);
        assert.equal((err.data as { code: string }).code, 'GW_ERR_UPSTREAM_TIMEOUT');
        return true;
      });
      await waitFor('the server got the cancellation', () =>
        cap.lines().some((l) => typeof l.stderr === 'string' && /^cancelled \d+ timeout$/.test(l.stderr)));
      await s.client.close();
    } finally {
      await upstream.close();
    }
  });

  test('a server slower to initialize than requestTimeout still starts (startTimeout bounds the start) and serves calls', async () => {
    // The fake answers initialize 1.5s after receiving it: always later than the 1s requestTimeout.
    const upstream = upstreamFor(
      { command: 'node', args: [FAKE], env: { INIT_DELAY_MS: '1500' }, requestTimeout: '1s' },
      { configDir: dir },
    );
    try {
      const s = await connect(upstream, 'slowstart');
      assert.equal(textOf(await s.client.callTool({ name: 'echo', arguments: { text: 'up' } })), 'up');
      assert.equal(upstream.processes()[0].state, 'running');
      await s.client.close();
    } finally {
      await upstream.close();
    }
  });

  test('startTimeout bounds spawn + initialize: a server that never initializes is refused and stopped', async () => {
    const upstream = upstreamFor(
      { command: 'node', args: [FAKE], env: { INIT_DELAY_MS: 'never' }, startTimeout: '300ms' },
      { configDir: dir },
    );
    try {
      await assert.rejects(connect(upstream, 'nostart'), (err: unknown) => {
        assert.ok(err instanceof McpError, String(err));
        assert.equal((err.data as { code: string }).code, 'GW_ERR_UPSTREAM_TIMEOUT');
        assert.match(err.message, /startTimeout/);
        return true;
      });
      await waitFor('the process that never started is stopped', () => children().pids.length === 0 && upstream.sessions().length === 0);
      assert.equal(upstream.processes()[0].state, 'crashed');
    } finally {
      await upstream.close();
    }
  });

  test('startTimeout must be above 0', () => {
    assert.throws(() => StdioUpstreamSchema.parse({ stdio: { command: 'node', startTimeout: 0 } }), /startTimeout/);
  });

  test('a command that cannot start answers initialize with GW_ERR_UPSTREAM_SPAWN_FAILED', async () => {
    const upstream = upstreamFor({ command: 'node', args: [FAKE], cwd: 'does-not-exist' }, { configDir: dir });
    try {
      await assert.rejects(connect(upstream, 'nospawn'), (err: unknown) => {
        assert.ok(err instanceof McpError, String(err));
        assert.equal((err.data as { code: string }).code, 'GW_ERR_UPSTREAM_SPAWN_FAILED');
        return true;
      });
      await waitFor('failed session released', () => upstream.sessions().length === 0);
    } finally {
      await upstream.close();
    }
  });

  test('close(): SIGTERM, then SIGKILL after shutdownGrace for a child that ignores SIGTERM; no child left', async () => {
    const cap = captureLog();
    const upstream = upstreamFor(
      { command: 'node', args: [FAKE], env: { IGNORE_SIGTERM: '1' }, shutdownGrace: '300ms' },
      { configDir: dir, log: cap.log },
    );
    const s = await connect(upstream, 'stubborn');
    const pid = upstream.processes()[0].pid;
    const started = Date.now();
    await upstream.close();
    const took = Date.now() - started;
    assert.ok(!alive(pid));
    assert.ok(took >= 250, `waited for the grace period (${took}ms)`);
    assert.ok(cap.lines().some((l) => l.msg === 'child ignored SIGTERM; sending SIGKILL'));
    assert.equal(children().pids.length, 0);
    // The upstream no longer takes exchanges.
    const after = await dispatchRaw(upstream, { tenant: 'stubborn', body: { jsonrpc: '2.0', id: 1, method: 'initialize', params: {} } });
    assert.equal(after.status, 503);
    assert.equal((await refusalOf(after)).error.data.code, 'GW_ERR_SHUTTING_DOWN');
    await s.client.close().catch(() => {});
  });
});
