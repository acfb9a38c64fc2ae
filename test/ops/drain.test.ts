/**
 * Graceful drain on SIGTERM, with the gateway as operators run it (`node gateway/main.ts`), in front of
 * @modelcontextprotocol/server-everything (Streamable HTTP) and @modelcontextprotocol/server-memory
 * (a stdio upstream, so the gateway has child processes to stop).
 *
 * The contract (issue 6, docs/operations.md): stop accepting, let in-flight requests finish and end open
 * streams cleanly within `shutdownGrace`, stop child processes, exit 0; `/readyz` says 503 while
 * draining so load balancers stop sending first.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connectClient } from '../helpers/mcp-client.ts';
import { freePort, startEverything, type RunningUpstream } from '../helpers/upstreams.ts';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/recording-upstream.ts';
import { canConnect, childPids, isAlive, sleep, startChildGateway, stopAllChildGateways, type ChildGateway } from './support/child-gateway.ts';
import { openGetStream, openSession, post, sessionHeaders, type RawAnswer } from './support/raw-mcp.ts';

let everything: RunningUpstream;
/** Never answers a POST: an exchange on it stays in flight until the gateway cuts it. */
let silent: RecordingUpstream;
before(async () => {
  everything = await startEverything('streamableHttp');
  // The readiness probe (a body-less OPTIONS) is answered, so /readyz can be 200.
  silent = await startRecordingUpstream((rec) => (rec.method === 'POST' ? { kind: 'never' } : { kind: 'text', status: 204 }));
});
after(async () => {
  await stopAllChildGateways();
  await everything?.close();
  await silent?.close();
});

interface Started {
  g: ChildGateway;
  port: number;
  adminPort: number;
}

async function startDrainGateway(shutdownGrace: string): Promise<Started> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-drain-'));
  const [port, adminPort] = [await freePort(), await freePort()];
  const file = path.join(dir, 'gateway.yaml');
  await writeFile(file, `
listeners: [{ name: main, port: ${port} }]
upstreams:
  everything: { url: ${everything.url}/mcp }
  silent: { url: ${silent.url}/mcp }
  memory:
    stdio: { command: mcp-server-memory, pathEnv: { MEMORY_FILE_PATH: memory.jsonl } }
routes:
  - { listener: main, path: /mcp, upstream: everything }
  - { listener: main, path: /silent, upstream: silent }
  - { listener: main, path: /memory, upstream: memory }
admin: { port: ${adminPort} }
shutdownGrace: ${shutdownGrace}
log: { level: info, pretty: false }
`);
  const g = await startChildGateway(file, { port });
  return { g, port, adminPort };
}

const longCall = (url: string, sid: string, id: number, seconds: number): Promise<RawAnswer> =>
  post(url, {
    jsonrpc: '2.0', id, method: 'tools/call',
    params: { name: 'trigger-long-running-operation', arguments: { duration: seconds, steps: 3 }, _meta: { progressToken: `p${id}` } },
  }, sessionHeaders(sid));

/** Polls until no new TCP connection is accepted on the port. */
async function refusesConnections(port: number, withinMs: number): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if (!(await canConnect(port))) return true;
    await sleep(20);
  }
  return false;
}

describe('SIGTERM drain of a gateway process', () => {
  test('an in-flight slow tool call completes, new connections are refused, GET streams end cleanly, /readyz is 503, children stop, exit 0', async () => {
    const { g, port, adminPort } = await startDrainGateway('5s');
    const mcp = `http://127.0.0.1:${port}/mcp`;
    try {
      // A stdio session, so the gateway has a child process.
      const memory = await connectClient(`http://127.0.0.1:${port}/memory`);
      const graph = await memory.callTool({ name: 'read_graph', arguments: {} });
      assert.equal(graph.isError, undefined);
      const children = childPids(g.pid);
      assert.ok(children.length >= 1, 'the stdio upstream runs as a child of the gateway');

      const sid = await openSession(mcp);
      const stream = await openGetStream(mcp, sessionHeaders(sid));
      assert.equal(stream.status, 200);
      const inFlight = longCall(mcp, sid, 2, 1.5);
      await sleep(400);
      const sigtermAt = performance.now();
      g.child.kill('SIGTERM');

      assert.equal(await refusesConnections(port, 1000), true, 'no new connections after SIGTERM');

      // docs/operations.md: the `config` check fails "while shutting down".
      const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      assert.equal(ready.status, 503);
      const report = (await ready.json()) as { status: string; checks: Array<{ name: string; ok: boolean }> };
      assert.equal(report.status, 'not_ready');
      assert.equal(report.checks.find((c) => c.name === 'config')?.ok, false);

      const ended = await stream.ended;
      assert.equal(ended.clean, true, `the GET stream ended cleanly: ${ended.error?.message}`);

      const answer = await inFlight;
      assert.equal(answer.status, 200);
      const progress = answer.messages.filter((m) => m.method === 'notifications/progress').map((m) => (m.params as { progress: number }).progress);
      assert.deepEqual(progress, [1, 2, 3]);
      assert.match(JSON.stringify(answer.messages.find((m) => m.id === 2)?.result), /completed/, 'the in-flight call got its result');

      const exit = await g.exited;
      assert.equal(exit.code, 0);
      assert.ok(exit.atMs - sigtermAt < 5000 + 1000, `exited ${Math.round(exit.atMs - sigtermAt)}ms after SIGTERM (grace 5s)`);
      assert.ok(exit.atMs - sigtermAt >= 1000, 'it waited for the in-flight call');
      assert.deepEqual(children.filter(isAlive), [], 'stdio children are gone');
      assert.ok(g.logs().some((l) => l.msg === 'gateway stopped'));
      await memory.close().catch(() => undefined);
    } finally {
      await g.stop();
    }
  });

  test('shutdownGrace is a deadline: a request still unanswered when it passes is cut, and the process exits 0 in time', async () => {
    const { g, port } = await startDrainGateway('1s');
    try {
      const memory = await connectClient(`http://127.0.0.1:${port}/memory`);
      await memory.callTool({ name: 'read_graph', arguments: {} });
      const children = childPids(g.pid);
      assert.ok(children.length >= 1);

      const seen = silent.requests.length;
      const inFlight = post(`http://127.0.0.1:${port}/silent`, { jsonrpc: '2.0', id: 1, method: 'tools/list' })
        .then((a) => ({ answer: a }), (err: Error) => ({ error: err }));
      await silent.waitFor(() => silent.requests.slice(seen).some((r) => r.method === 'POST'), 3000, 'the request upstream');
      const sigtermAt = performance.now();
      g.child.kill('SIGTERM');
      const exit = await g.exited;
      const tookMs = exit.atMs - sigtermAt;
      assert.equal(exit.code, 0);
      assert.ok(tookMs >= 900, `it gave the in-flight request its grace (${Math.round(tookMs)}ms)`);
      assert.ok(tookMs < 1000 + 1500, `exited ${Math.round(tookMs)}ms after SIGTERM with a 1s grace`);
      const outcome = await inFlight;
      assert.ok('error' in outcome || outcome.answer.status >= 500, 'the unanswered request was cut');
      await silent.waitFor(() => silent.requests.slice(seen).some((r) => r.method === 'POST' && r.aborted), 2000, 'the upstream request to be aborted');
      assert.deepEqual(children.filter(isAlive), [], 'stdio children are gone');
      await memory.close().catch(() => undefined);
    } finally {
      await g.stop();
    }
  });

  test('shutdownGrace is a deadline for streamed tool calls too: a call longer than the grace is cut at the deadline', async () => {
    const { g, port } = await startDrainGateway('1s');
    const mcp = `http://127.0.0.1:${port}/mcp`;
    try {
      const sid = await openSession(mcp);
      const inFlight = longCall(mcp, sid, 3, 6).then((a) => ({ answer: a }), (err: Error) => ({ error: err }));
      await sleep(300);
      const sigtermAt = performance.now();
      g.child.kill('SIGTERM');
      const exit = await g.exited;
      const tookMs = exit.atMs - sigtermAt;
      assert.equal(exit.code, 0);
      assert.ok(tookMs >= 900, `the streamed call kept its grace (${Math.round(tookMs)}ms)`);
      assert.ok(tookMs < 1000 + 1500, `exited ${Math.round(tookMs)}ms after SIGTERM with a 1s grace`);
      const outcome = await inFlight;
      const completed = 'answer' in outcome && outcome.answer.messages.some((m) => m.id === 3 && m.result !== undefined);
      assert.equal(completed, false, 'the 6s call was cut, not completed');
    } finally {
      await g.stop();
    }
  });

  test('with nothing in flight, SIGTERM exits 0 at once and /readyz was 200 before', async () => {
    const { g, adminPort } = await startDrainGateway('5s');
    try {
      const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      assert.equal(ready.status, 200, await ready.text());
      const sigtermAt = performance.now();
      g.child.kill('SIGTERM');
      const exit = await g.exited;
      assert.equal(exit.code, 0);
      assert.ok(exit.atMs - sigtermAt < 1500, `exited ${Math.round(exit.atMs - sigtermAt)}ms after SIGTERM`);
    } finally {
      await g.stop();
    }
  });
});
