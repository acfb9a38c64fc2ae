/**
 * Hot reload, end to end: a real gateway in front of @modelcontextprotocol/server-everything, driven by
 * SDK clients and raw Streamable HTTP, while the test rewrites gateway.yaml under it.
 *
 * What an operator relies on (issue 6): under steady load a reload fails zero requests; requests and SSE
 * streams already open finish on the pipeline they started on; an invalid file leaves the old config
 * serving and names the problem's path; SIGHUP and file changes both reload a running process; a
 * changed listener port takes effect (or the log says it needs a restart).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rename, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startEverything, freePort, type RunningUpstream } from '../helpers/upstreams.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { connectClient } from '../helpers/mcp-client.ts';
import { canConnect, childPids, isAlive, NODE_BIN, sleep, startChildGateway, stopAllChildGateways, type ChildGateway } from './support/child-gateway.ts';
import { gatewayCode, openGetStream, openSession, post, sessionHeaders } from './support/raw-mcp.ts';

let everything: RunningUpstream;
before(async () => {
  everything = await startEverything('streamableHttp');
});
after(async () => {
  await stopAllChildGateways();
  await everything?.close();
});

/** gateway.yaml with one listener and one route to server-everything; `route` adds route options. */
function config(opts: { port?: number; path?: string; route?: string; extra?: string; listener?: string } = {}): string {
  return `
listeners: [{ name: main, port: ${opts.port ?? 0}${opts.listener ? `, ${opts.listener}` : ''} }]
upstreams:
  everything: { url: ${everything.url}/mcp }
routes:
  - name: main-mcp
    listener: main
    path: ${opts.path ?? '/mcp'}
    upstream: everything
${(opts.route ?? '').split('\n').map((l) => `    ${l}`).join('\n')}
log: { level: info, pretty: false }
${opts.extra ?? ''}
`;
}

const reloadedLines = (gw: TestGateway) => gw.logs().filter((l) => l.msg === 'configuration reloaded');
const auditLines = (lines: Array<Record<string, unknown>>) => lines.filter((l) => l.audit === true);

async function echoOnce(client: Client, text: string): Promise<void> {
  const r = await client.callTool({ name: 'echo', arguments: { message: text } });
  assert.deepEqual(r.content, [{ type: 'text', text: `Echo: ${text}` }]);
}

async function waitUntil(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('hot reload in process', () => {
  test('under steady load (4 SDK clients calling tools), 3 file rewrites and 2 reload() calls fail zero calls', async () => {
    const gw = await startTestGateway(config());
    const configFile = path.join(gw.dir, 'gateway.yaml');
    const clients = await Promise.all([0, 1, 2, 3].map((i) => connectClient(`${gw.url()}/mcp`, { name: `load-${i}` })));
    try {
      let stop = false;
      let ok = 0;
      const failures: string[] = [];
      const loops = clients.map(async (client, i) => {
        for (let n = 0; !stop; n++) {
          try {
            await echoOnce(client, `client ${i} call ${n}`);
            ok++;
          } catch (err) {
            failures.push(`client ${i} call ${n}: ${(err as Error).message}`);
          }
        }
      });

      // Each step changes what the route does, so each reload builds a genuinely different pipeline.
      const steps: Array<{ atMs: number; yaml?: string; reload?: boolean }> = [
        { atMs: 300, yaml: config({ route: 'plugins: [{ type: audit, destination: log }]' }) },
        { atMs: 900, yaml: config({ route: 'plugins: [{ type: audit, destination: log }]\nheartbeat: 5s' }), reload: true },
        { atMs: 1600, yaml: config({ route: 'plugins: [{ type: audit, destination: log, messages: false }]\nmaxRequestBytes: 1mb' }) },
        { atMs: 2300, reload: true },
      ];
      const t0 = performance.now();
      const reloadResults: Array<{ ok: boolean; error?: string }> = [];
      for (const step of steps) {
        await sleep(Math.max(0, step.atMs - (performance.now() - t0)));
        if (step.yaml) await writeFile(configFile, step.yaml);
        if (step.reload) reloadResults.push(await gw.gw.reload());
      }
      await sleep(Math.max(0, 3000 - (performance.now() - t0)));
      stop = true;
      await Promise.all(loops);

      assert.deepEqual(failures, [], 'no call failed during the reloads');
      assert.ok(ok >= 40, `steady load: only ${ok} calls completed in 3s`);
      assert.ok(reloadResults.every((r) => r.ok), JSON.stringify(reloadResults));
      // Three file writes (each seen by the watcher) plus explicit reloads: at least 3 generations.
      assert.ok(reloadedLines(gw).length >= 3, `only ${reloadedLines(gw).length} reloads logged`);
      // The last config is the one serving, and its audit plugin is writing.
      assert.equal(gw.gw.runtime().loaded.config.routes[0].maxRequestBytes, 1_000_000);
      const audited = auditLines(gw.logs()).filter((l) => l.kind === 'exchange' && l.route === 'main-mcp' && l.status === 200);
      assert.ok(audited.length > 0, 'audit lines appear once the audit plugin is configured');
      await echoOnce(clients[0], 'after the reloads');
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await gw.close();
    }
  });

  test('an SSE tool call and a standalone GET stream opened before a reload finish on the old pipeline', async () => {
    // Old pipeline: audit writes a line per message. New pipeline: no plugins at all. Any audit line
    // written after the reload therefore comes from an exchange that started before it.
    const gw = await startTestGateway(config({ route: 'plugins: [{ type: audit, destination: log }]' }));
    const url = `${gw.url()}/mcp`;
    const sid = await openSession(url);
    const headers = sessionHeaders(sid);
    const stream = await openGetStream(url, headers);
    try {
      assert.equal(stream.status, 200);
      assert.equal((await post(url, { jsonrpc: '2.0', id: 2, method: 'logging/setLevel', params: { level: 'debug' } }, headers)).status, 200);
      const toggled = await post(url, { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'toggle-simulated-logging', arguments: {} } }, headers);
      assert.match(JSON.stringify(toggled.messages), /Started simulated/);

      const longCall = post(url, {
        jsonrpc: '2.0', id: 4, method: 'tools/call',
        params: { name: 'trigger-long-running-operation', arguments: { duration: 1.5, steps: 3 }, _meta: { progressToken: 'p4' } },
      }, headers);
      await sleep(300);
      await writeFile(path.join(gw.dir, 'gateway.yaml'), config({ route: 'heartbeat: 5s' }));
      const reloaded = await gw.gw.reload();
      assert.deepEqual(reloaded, { ok: true });
      const reloadIndex = gw.logs().findIndex((l) => l.msg === 'configuration reloaded');
      const reloadedAt = performance.now();

      // The call that was in flight completes, with every progress notification and its result.
      const answer = await longCall;
      assert.equal(answer.status, 200);
      const progress = answer.messages.filter((m) => m.method === 'notifications/progress').map((m) => (m.params as { progress: number }).progress);
      assert.deepEqual(progress, [1, 2, 3]);
      const result = answer.messages.find((m) => m.id === 4);
      assert.match(JSON.stringify(result?.result), /completed/);

      // The GET stream keeps carrying server messages after the reload (simulated logging: every 5s).
      await stream.waitFor(() => stream.events.some((e) => e.atMs > reloadedAt && /notifications\/message/.test(e.data)), 8000, 'log notification after the reload');

      // New requests use the new pipeline: no audit line for this tools/list.
      assert.equal((await post(url, { jsonrpc: '2.0', id: 5, method: 'tools/list' }, headers)).status, 200);
      await sleep(100);
      const afterReload = auditLines(gw.logs().slice(reloadIndex + 1));
      assert.ok(afterReload.some((l) => l.kind === 'exchange' && l.method === 'POST' && l.status === 200), 'the in-flight call was audited by its old pipeline');
      assert.ok(afterReload.some((l) => l.kind === 'message' && l.rpcMethod === 'notifications/message'), 'the GET stream is still inspected by its old pipeline');
      assert.ok(!afterReload.some((l) => l.kind === 'message' && l.rpcMethod === 'tools/list'), 'a request made after the reload ran on the new pipeline');

      // Stop the server's logging timer, then the stream; it ends without error on our side.
      await post(url, { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'toggle-simulated-logging', arguments: {} } }, headers);
    } finally {
      stream.close();
      await stream.ended;
      await gw.close();
    }
  });

  test('an invalid file keeps the old config serving; reload() and the log name the problem\'s path', async () => {
    const gw = await startTestGateway(config());
    const client = await connectClient(`${gw.url()}/mcp`);
    try {
      await echoOnce(client, 'before');
      // A typo in a plugin option: the audit plugin's strict schema refuses it.
      await writeFile(path.join(gw.dir, 'gateway.yaml'), config({ route: 'plugins: [{ type: audit, destinaton: log }]' }));
      const result = await gw.gw.reload();
      assert.equal(result.ok, false);
      assert.match(result.error!, /routes\[0\]\.plugins\[0\]/);
      assert.match(result.error!, /destinaton/);
      const failed = gw.logs().find((l) => l.msg === 'configuration reload failed; the previous configuration keeps serving');
      assert.ok(failed, 'the failure is logged');
      assert.equal(failed.level, 50);
      assert.match(String(failed.error), /routes\[0\]\.plugins\[0\]/);
      assert.match(String(failed.error), new RegExp(path.join(gw.dir, 'gateway.yaml').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')), 'the log names the file');

      // Same session, same pipeline: nothing changed for the client.
      await echoOnce(client, 'after the failed reload');
      assert.deepEqual(gw.gw.runtime().loaded.config.routes[0].plugins, []);
      const metrics = await (await fetch(`${gw.adminUrl()}/metrics`)).text();
      assert.match(metrics, /^mcpgw_config_last_reload_successful 0$/m);
      assert.match(metrics, /^mcpgw_config_reloads_total\{outcome="failure"\} [1-9]/m);

      // Fixing the file brings the next reload back.
      await writeFile(path.join(gw.dir, 'gateway.yaml'), config({ route: 'plugins: [{ type: audit, destination: log }]' }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      await echoOnce(client, 'after the fix');
    } finally {
      await client.close();
      await gw.close();
    }
  });

  test('a changed listener port: the new port serves, the old one is closed, the log says it reopened', async () => {
    const gw = await startTestGateway(config());
    const oldPort = Number(new URL(gw.url()).port);
    const newPort = await freePort();
    try {
      await writeFile(path.join(gw.dir, 'gateway.yaml'), config({ port: newPort }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      const client = await connectClient(`http://127.0.0.1:${newPort}/mcp`);
      try {
        await echoOnce(client, 'on the new port');
      } finally {
        await client.close();
      }
      assert.equal(gw.url(), `http://127.0.0.1:${newPort}`);
      assert.equal(await canConnect(oldPort), false, 'the old port no longer accepts connections');
      const line = gw.logs().find((l) => l.msg === 'listener changed: reopening it with the new settings');
      assert.equal(line?.listener, 'main');
    } finally {
      await gw.close();
    }
  });

  test('settings changed on an unchanged port (allowedOrigins, publicUrl) apply on the same socket, reload after reload', async () => {
    const port = await freePort();
    const gw = await startTestGateway(config({ port }));
    const file = path.join(gw.dir, 'gateway.yaml');
    const url = `http://127.0.0.1:${port}/mcp`;
    const fromApp = { origin: 'https://app.example' };
    const client = await connectClient(url);
    try {
      assert.equal((await post(url, { jsonrpc: '2.0', id: 1, method: 'ping' }, fromApp)).status, 403, 'precondition: the origin is not allowed yet');
      await writeFile(file, config({ port, listener: 'allowedOrigins: ["https://app.example"]' }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      assert.notEqual((await post(url, { jsonrpc: '2.0', id: 2, method: 'ping' }, fromApp)).status, 403, 'the new allowedOrigins apply');
      // A second and a third reload: the bug made every later reload fail with EADDRINUSE.
      await writeFile(file, config({ port, listener: 'allowedOrigins: ["https://app.example"], publicUrl: "https://mcp.example"' }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      assert.equal(gw.gw.runtime().routesByListener.get('main')![0].info.listener.publicUrl, 'https://mcp.example', 'plugins see the new publicUrl');
      await writeFile(file, config({ port }));
      assert.deepEqual(await gw.gw.reload(), { ok: true });
      assert.equal((await post(url, { jsonrpc: '2.0', id: 3, method: 'ping' }, fromApp)).status, 403, 'back to the defaults');
      // The client's session and its keep-alive connection lived through all of it.
      await echoOnce(client, 'after three listener changes');
      assert.ok(gw.logs().some((l) => l.msg === 'listener settings changed; its socket stays open' && l.listener === 'main'));
      assert.ok(!gw.logs().some((l) => l.msg === 'listener changed: reopening it with the new settings'), 'the socket was never reopened');
    } finally {
      await client.close();
      await gw.close();
    }
  });

  test('a reload whose new port is taken fails, and the old listener keeps serving', async () => {
    const gw = await startTestGateway(config());
    const oldPort = Number(new URL(gw.url()).port);
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const takenPort = (squatter.address() as { port: number }).port;
    try {
      await writeFile(path.join(gw.dir, 'gateway.yaml'), config({ port: takenPort }));
      const result = await gw.gw.reload();
      assert.equal(result.ok, false);
      assert.match(result.error!, /EADDRINUSE/);
      const client = await connectClient(`http://127.0.0.1:${oldPort}/mcp`);
      try {
        await echoOnce(client, 'the old listener still serves');
      } finally {
        await client.close();
      }
    } finally {
      // Let the watcher's own (debounced) reload of this write fail too while the port is still taken,
      // or it would open the port after close() (see the next test).
      await sleep(600);
      squatter.close();
      await gw.close();
    }
  });

  test('close() right after a config write: the debounced reload must not reopen listeners afterwards', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-reload-'));
    const newPort = await freePort();
    const script = fileURLToPath(new URL('./support/close-during-watch.ts', import.meta.url));
    const child = spawn(NODE_BIN, [script, dir, String(newPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { out += b.toString(); });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      // Generous: a loaded CI machine takes seconds just to start Node; a real hang never ends.
      const code = await Promise.race([exited, sleep(20_000).then(() => 'hung' as const)]);
      assert.match(out, new RegExp(`closed ${newPort}`), out);
      assert.equal(await canConnect(newPort), false, 'nothing listens on the new port after close()');
      assert.equal(code, 0, 'the process exits by itself after close()');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
  });

  test('a reload requested while another is being built is not lost', async () => {
    const slowPlugin = fileURLToPath(new URL('./support/slow-start-plugin.ts', import.meta.url));
    const gw = await startTestGateway(config({ path: '/a' }));
    const file = path.join(gw.dir, 'gateway.yaml');
    const servesPath = async (p: string) => (await post(`${gw.url()}${p}`, { jsonrpc: '2.0', id: 1, method: 'ping' })).status !== 404;
    try {
      await writeFile(file, config({ path: '/b', route: `plugins: [{ type: ${slowPlugin}, delayMs: 1000 }]` }));
      const first = gw.gw.reload();
      await sleep(100);
      // While the slow build runs, the old config serves.
      assert.equal(await servesPath('/a'), true);
      await writeFile(file, config({ path: '/c' }));
      const second = gw.gw.reload();
      assert.deepEqual(await first, { ok: true });
      assert.deepEqual(await second, { ok: true });
      await sleep(1500); // room for the watcher's own reload of the last write
      assert.equal(gw.gw.runtime().loaded.config.routes[0].path, '/c', 'the last file written is the config in force');
      assert.equal(await servesPath('/c'), true);
    } finally {
      await gw.close();
    }
  });

  test('a reload that validates but fails to build (rate-limit store: redis without redis.url) leaves listeners untouched', async () => {
    const gw = await startTestGateway(config());
    const oldPort = Number(new URL(gw.url()).port);
    const newPort = await freePort();
    try {
      await writeFile(path.join(gw.dir, 'gateway.yaml'), config({ port: newPort, route: 'plugins: [{ type: rate-limit, key: ip, store: redis }]' }));
      const result = await gw.gw.reload();
      assert.equal(result.ok, false);
      assert.match(result.error!, /redis/);
      assert.equal(await canConnect(newPort), false, 'the new port was not opened by a failed reload');
      const client = await connectClient(`http://127.0.0.1:${oldPort}/mcp`);
      try {
        await echoOnce(client, 'the old listener still serves');
      } finally {
        await client.close();
      }
    } finally {
      await gw.close();
    }
  });
});

describe('hot reload of a gateway process (node gateway/main.ts)', () => {
  const countReloads = (g: ChildGateway) => g.logs().filter((l) => l.msg === 'configuration reloaded').length;

  test('SIGHUP reloads: a renamed route is served, the old path is gone', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-reload-'));
    const port = await freePort();
    const extra = 'admin: { enabled: false }';
    // The config lives in a symlinked folder we repoint (the Kubernetes ConfigMap layout): neither the
    // file nor the folder the gateway resolved at start changes, so only the signal can trigger a reload.
    await mkdir(path.join(dir, 'v1'));
    await mkdir(path.join(dir, 'v2'));
    await writeFile(path.join(dir, 'v1', 'gateway.yaml'), config({ port, path: '/one', extra }));
    await writeFile(path.join(dir, 'v2', 'gateway.yaml'), config({ port, path: '/two', extra }));
    await symlink(path.join(dir, 'v1'), path.join(dir, 'current'));
    const g = await startChildGateway(path.join(dir, 'current', 'gateway.yaml'), { port });
    try {
      await openSession(`http://127.0.0.1:${port}/one`);
      g.child.kill('SIGHUP');
      await g.waitForLog((l) => l.msg === 'configuration reloaded', 5000, 'reload after SIGHUP (unchanged file)');
      await symlink(path.join(dir, 'v2'), path.join(dir, 'next'));
      await rename(path.join(dir, 'next'), path.join(dir, 'current'));
      await sleep(600);
      assert.equal(countReloads(g), 1, 'precondition: nothing but the signal reloads this layout');

      g.child.kill('SIGHUP');
      await waitUntil(() => countReloads(g) === 2, 5000, 'reload after the second SIGHUP');
      const sid = await openSession(`http://127.0.0.1:${port}/two`);
      const listed = await post(`http://127.0.0.1:${port}/two`, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, sessionHeaders(sid));
      assert.equal(listed.status, 200);
      const gone = await post(`http://127.0.0.1:${port}/one`, { jsonrpc: '2.0', id: 1, method: 'tools/list' });
      assert.equal(gone.status, 404);
      assert.equal(gatewayCode(gone), 'GW_ERR_NO_ROUTE');
      assert.equal(g.child.exitCode, null, 'SIGHUP does not stop the process');
    } finally {
      await g.stop();
    }
  });

  test('a changed stdio upstream: the replaced bridge\'s children are stopped after the reload', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-reload-'));
    const port = await freePort();
    const file = path.join(dir, 'gateway.yaml');
    const withMemory = (idleTimeout: string) => `
listeners: [{ name: main, port: ${port} }]
upstreams:
  memory:
    stdio: { command: mcp-server-memory, pathEnv: { MEMORY_FILE_PATH: memory.jsonl }, idleTimeout: ${idleTimeout} }
routes:
  - { listener: main, path: /memory, upstream: memory }
admin: { enabled: false }
log: { level: info, pretty: false }
`;
    await writeFile(file, withMemory('5m'));
    const g = await startChildGateway(file, { port });
    try {
      const client = await connectClient(`http://127.0.0.1:${port}/memory`);
      await client.callTool({ name: 'read_graph', arguments: {} });
      await client.close();
      const before = childPids(g.pid);
      assert.ok(before.length >= 1, 'the stdio upstream runs as a child of the gateway');

      await writeFile(file, withMemory('10m'));
      g.child.kill('SIGHUP');
      await waitUntil(() => countReloads(g) >= 1, 5000, 'the reload');
      // The new bridge serves new sessions; the old one has no route left and must be closed.
      const again = await connectClient(`http://127.0.0.1:${port}/memory`);
      await again.callTool({ name: 'read_graph', arguments: {} });
      await again.close();
      await waitUntil(() => before.every((pid) => !isAlive(pid)), 4000, 'the old bridge\'s children to stop').catch(() => undefined);
      assert.deepEqual(before.filter(isAlive), [], 'children of the replaced bridge still run');
    } finally {
      await g.stop();
    }
  });

  test('a file change reloads by itself (written in place)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-reload-'));
    const port = await freePort();
    const extra = 'admin: { enabled: false }';
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, config({ port, path: '/one', extra }));
    const g = await startChildGateway(file, { port });
    const servesPath = async (p: string) => (await post(`http://127.0.0.1:${port}${p}`, { jsonrpc: '2.0', id: 1, method: 'ping' })).status !== 404;
    try {
      assert.equal(await servesPath('/one'), true);
      // 1. Written in place.
      await writeFile(file, config({ port, path: '/two', extra }));
      await waitUntil(() => countReloads(g) >= 1, 5000, 'reload after an in-place write');
      assert.equal(await servesPath('/two'), true);
      assert.equal(await servesPath('/one'), false);
    } finally {
      await g.stop();
    }
  });

  test('a file replaced by rename (editors, kubectl, config management) keeps being watched afterwards', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-reload-'));
    const port = await freePort();
    const extra = 'admin: { enabled: false }';
    const file = path.join(dir, 'gateway.yaml');
    const replace = async (text: string) => {
      await writeFile(`${file}.tmp`, text);
      await rename(`${file}.tmp`, file);
    };
    await writeFile(file, config({ port, path: '/one', extra }));
    const g = await startChildGateway(file, { port });
    const servesPath = async (p: string) => (await post(`http://127.0.0.1:${port}${p}`, { jsonrpc: '2.0', id: 1, method: 'ping' })).status !== 404;
    try {
      await replace(config({ port, path: '/two', extra }));
      await waitUntil(() => countReloads(g) >= 1, 5000, 'reload after the first replace');
      assert.equal(await servesPath('/two'), true);
      await sleep(400);
      await replace(config({ port, path: '/three', extra }));
      await waitUntil(() => countReloads(g) >= 2, 5000, 'reload after the second replace');
      assert.equal(await servesPath('/three'), true);
      await writeFile(file, config({ port, path: '/four', extra }));
      await waitUntil(() => countReloads(g) >= 3, 5000, 'reload after an in-place write to the replacing file');
      assert.equal(await servesPath('/four'), true);
    } finally {
      await g.stop();
    }
  });
});
