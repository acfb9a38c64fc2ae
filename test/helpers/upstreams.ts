/**
 * Real MCP servers from npm, started on free ports for tests, and stopped with them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** Absolute path of an npm package's bin script, so tests never depend on PATH. */
export function packageBin(pkg: string, bin?: string): string {
  const manifestPath = require.resolve(`${pkg}/package.json`);
  const manifest = require(manifestPath) as { bin: string | Record<string, string> };
  const rel = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin[bin ?? Object.keys(manifest.bin)[0]];
  return path.join(path.dirname(manifestPath), rel);
}

/** A port that was free a moment ago (for servers that cannot listen on port 0 themselves). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface RunningUpstream {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  close(): Promise<void>;
}

/** Starts a node script and resolves once `ready` matches its output, or, for `'port'`, the port accepts. */
export async function startNodeServer(
  script: string,
  args: string[],
  env: Record<string, string>,
  ready: RegExp | 'port',
  port: number,
  timeoutMs = 20_000,
): Promise<RunningUpstream> {
  const child = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const onData = (b: Buffer) => { out += b.toString(); };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not become ready in ${timeoutMs}ms:\n${out}`)), timeoutMs);
    const done = () => { clearTimeout(timer); resolve(); };
    if (ready === 'port') {
      const poll = () => {
        const sock = createConnection({ host: '127.0.0.1', port });
        sock.once('connect', () => { sock.destroy(); done(); });
        sock.once('error', () => { sock.destroy(); if (child.exitCode === null) setTimeout(poll, 100); });
      };
      poll();
      return;
    }
    const check = () => { if (ready.test(out)) done(); };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${script} exited with ${code}:\n${out}`)); });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    output: () => out,
    close: () => stopChild(child),
  };
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => { clearTimeout(kill); resolve(); });
    child.kill('SIGTERM');
  });
}

/**
 * `@modelcontextprotocol/server-everything` in `streamableHttp` (POST/GET/DELETE /mcp) or `sse`
 * (GET /sse, POST /message) mode.
 */
export async function startEverything(mode: 'streamableHttp' | 'sse', env: Record<string, string> = {}): Promise<RunningUpstream> {
  const port = await freePort();
  return startNodeServer(
    packageBin('@modelcontextprotocol/server-everything'),
    [mode],
    { ...env, PORT: String(port) },
    new RegExp(`${port}`),
    port,
  );
}

/**
 * `@falkordb/mcpserver` on Streamable HTTP against the local Redis (plain Redis: graph commands fail
 * with an error that names the graph, which shows what name reached the upstream).
 */
export async function startFalkorMcp(opts: { apiKey?: string; redisPort?: number } = {}): Promise<RunningUpstream> {
  const port = await freePort();
  const env: Record<string, string> = {
    MCP_TRANSPORT: 'http',
    MCP_PORT: String(port),
    PORT: String(port),
    FALKORDB_HOST: '127.0.0.1',
    FALKORDB_PORT: String(opts.redisPort ?? 6379),
  };
  if (opts.apiKey) env.MCP_API_KEY = opts.apiKey;
  return startNodeServer(packageBin('@falkordb/mcpserver'), [], env, 'port', port);
}
