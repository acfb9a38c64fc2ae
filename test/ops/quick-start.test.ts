/**
 * The README's quick start, as a new user follows it: the default gateway.yaml started as a process,
 * a token minted with the CLI, then every client configuration the README shows, taken from the README
 * itself (only the port and the token are substituted), connecting and using the same tenant's graph.
 *
 * The client programs themselves cannot all run here (Claude Desktop, VS Code, opencode, the Inspector
 * are desktop or browser apps); each is played by what it runs underneath: mcp-remote for Claude
 * Desktop (the real package, started with the README's command and arguments), the official SDK's
 * Streamable HTTP and legacy SSE clients with the README's URL and headers, and the browser's CORS
 * preflight plus a cross-origin POST for the Inspector.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { connectClient } from '../helpers/mcp-client.ts';
import { PASSWORD, signIn } from '../oauth/as-helpers.ts';
import { connectV2 } from '../helpers/v2-client.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const readme = readFileSync(path.join(root, 'README.md'), 'utf8');

/** The JSON block that follows a README paragraph starting with `lead`. */
function jsonAfter(lead: string): any {
  const at = readme.indexOf(lead);
  assert.ok(at >= 0, `README has no "${lead}" paragraph`);
  const block = /```json\n([\s\S]*?)```/.exec(readme.slice(at))!;
  return JSON.parse(block[1]);
}

/** The quick-start table: client → URL, as written. */
function tableUrls(): Map<string, string> {
  const rows = new Map<string, string>();
  const table = readme.slice(readme.indexOf('| client | URL | credential |'));
  for (const line of table.split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    const [client, url] = line.split('|').slice(1).map((c) => c.trim());
    rows.set(client, /`([^`]+)`/.exec(url)![1]);
  }
  return rows;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

function run(args: string[], cwd: string, stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, env: { ...process.env, NO_COLOR: '1' } });
    child.stdin.end(stdin);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the README quick start, with every client in its table', { timeout: 240_000 }, () => {
  let dir: string;
  let gateway: ChildProcess;
  let ports: { bearer: number; urlToken: number };
  let token: string;
  const at = (url: string) =>
    url.replace('localhost:3001', `localhost:${ports.bearer}`).replace('localhost:3003', `localhost:${ports.urlToken}`).replace('<token>', token);

  before(async () => {
    // The default config, as shipped, in its own folder: its dev keys and data land there.
    dir = await mkdtemp(path.join(tmpdir(), 'mcpgw-quickstart-'));
    await copyFile(path.join(root, 'gateway.yaml'), path.join(dir, 'gateway.yaml'));
    ports = { bearer: await freePort(), urlToken: await freePort() };
    gateway = spawn(process.execPath, [path.join(root, 'gateway/main.ts'), '--config', path.join(dir, 'gateway.yaml')], {
      cwd: dir,
      env: {
        ...process.env,
        GATEWAY_BEARER_PORT: String(ports.bearer),
        GATEWAY_URL_TOKEN_PORT: String(ports.urlToken),
        GATEWAY_ADMIN_PORT: String(await freePort()),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    gateway.stderr!.on('data', (c) => (out += c));
    await new Promise<void>((resolve, reject) => {
      gateway.stdout!.on('data', (c) => {
        out += c;
        // The banner lists the listeners once they are bound.
        if (out.includes(`:${ports.urlToken}`)) resolve();
      });
      gateway.once('exit', (code) => reject(new Error(`the gateway exited (${code}):\n${out}`)));
    });
    const minted = await run([path.join(root, 'gateway/cli/token.ts'), 'create', '--tenant', 'acme', '--sub', 'alice', '--config', path.join(dir, 'gateway.yaml')], dir);
    assert.equal(minted.code, 0, minted.stderr);
    token = minted.stdout.trim().split('\n').at(-1)!.trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    // And an account for the clients that sign in (users.yaml next to gateway.yaml, picked up live).
    const added = await run([path.join(root, 'gateway/cli/users.ts'), 'add', 'alice', '--tenant', 'acme', '--password-stdin', '--config', path.join(dir, 'gateway.yaml')], dir, PASSWORD);
    assert.equal(added.code, 0, added.stderr);
  });

  after(async () => {
    if (gateway.exitCode === null) {
      const exited = new Promise((r) => gateway.once('exit', r));
      gateway.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('Claude Desktop: mcp-remote with the README command, arguments and env', async () => {
    const server = jsonAfter('Claude Desktop (`claude_desktop_config.json`').mcpServers.memory;
    const args = (server.args as string[]).map(at);
    const transport = new StdioClientTransport({
      command: server.command,
      args,
      // npx finds the project's own mcp-remote; mcp-remote keeps its state under the test's folder.
      env: { ...(process.env as Record<string, string>), ...server.env, MCP_TOKEN: token, MCP_REMOTE_CONFIG_DIR: path.join(dir, 'mcp-remote') },
      stderr: 'pipe',
    });
    const client = new Client({ name: 'claude-desktop-stand-in', version: '1.0.0' });
    await client.connect(transport);
    try {
      await client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'from-claude', entityType: 'client', observations: [] }] } });
      const graph = await client.callTool({ name: 'read_graph', arguments: {} });
      assert.match(JSON.stringify(graph), /from-claude/);
    } finally {
      await client.close();
    }
  });

  it('Claude Desktop signing in: mcp-remote with nothing but the URL, the person signs in on the gateway', async () => {
    const server = jsonAfter('Claude Desktop, signing in').mcpServers.memory;
    assert.deepEqual(Object.keys(server).sort(), ['args', 'command'], 'no token anywhere');
    const callbackPort = await freePort();
    const transport = new StdioClientTransport({
      command: server.command,
      // mcp-remote's optional second argument is the port of its local OAuth callback (default 3334).
      args: [...(server.args as string[]).map(at), String(callbackPort)],
      env: { ...(process.env as Record<string, string>), MCP_REMOTE_CONFIG_DIR: path.join(dir, 'mcp-remote-signin'), BROWSER: 'true' },
      stderr: 'pipe',
    });
    // mcp-remote prints the authorization URL for the person (and tries to open a browser, which fails
    // here): the test is that person, signing in as alice on the gateway's pages.
    let stderr = '';
    const authorized = new Promise<void>((resolve, reject) => {
      transport.stderr!.on('data', (c: Buffer) => {
        stderr += c;
        const m = /(https?:\/\/\S+\/oauth\/authorize\?\S+)/.exec(stderr);
        if (!m || stderr.includes('\u0000signed')) return;
        stderr += '\u0000signed';
        signIn(m[1]).then((back) => fetch(back)).then((r) => (r.ok ? resolve() : reject(new Error(`callback ${r.status}`))), reject);
      });
    });
    const client = new Client({ name: 'claude-desktop-signing-in', version: '1.0.0' });
    try {
      await Promise.all([client.connect(transport), authorized]);
      const graph = await client.callTool({ name: 'read_graph', arguments: {} });
      assert.match(JSON.stringify(graph), /from-claude/, "alice's account is tenant acme: the same graph as the token's");
    } finally {
      await client.close();
    }
  });

  it('VS Code: the .vscode/mcp.json URL and header', async () => {
    const server = jsonAfter('VS Code (`.vscode/mcp.json`)').servers.memory;
    assert.equal(server.type, 'http');
    const headers = Object.fromEntries(Object.entries(server.headers as Record<string, string>).map(([k, v]) => [k, v.replace('${input:mcp-token}', token)]));
    const client = await connectClient(at(server.url), { headers, name: 'Visual Studio Code' });
    try {
      const tools = await client.listTools();
      assert.ok(tools.tools.some((t) => t.name === 'read_graph'));
      assert.match(JSON.stringify(await client.callTool({ name: 'read_graph', arguments: {} })), /from-claude/, 'same tenant, same graph');
    } finally {
      await client.close();
    }
  });

  it('opencode: the header form and the URL-token form', async () => {
    const withHeader = jsonAfter('opencode (`opencode.json`), with a header').mcp.memory;
    const headers = Object.fromEntries(Object.entries(withHeader.headers as Record<string, string>).map(([k, v]) => [k, v.replace('{env:MCP_TOKEN}', token)]));
    const inUrl = jsonAfter('opencode with the token in the URL').mcp.memory;
    for (const [url, h] of [[withHeader.url, headers], [(inUrl.url as string).replace('{env:MCP_TOKEN}', token), {}]] as const) {
      const client = await connectClient(at(url), { headers: h, name: 'opencode' });
      try {
        assert.match(JSON.stringify(await client.callTool({ name: 'read_graph', arguments: {} })), /from-claude/);
      } finally {
        await client.close();
      }
    }
  });

  it('every URL in the quick-start table, with its credential as the table says', async () => {
    const rows = tableUrls();
    assert.deepEqual([...rows.keys()].length, 4);
    for (const [clientName, url] of rows) {
      const target = at(url);
      const inUrl = target.includes('token=');
      if (clientName.startsWith('legacy HTTP+SSE')) {
        const client = await connectClient(target, { transport: 'sse', bearer: inUrl ? undefined : token });
        assert.match(JSON.stringify(await client.callTool({ name: 'read_graph', arguments: {} })), /from-claude/, clientName);
        await client.close();
      } else if (clientName === 'MCP Inspector') {
        // The Inspector's browser page talks to the gateway cross-origin: a preflight, then the POST.
        const origin = 'http://localhost:6274';
        const preflight = await fetch(target, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, mcp-protocol-version' },
        });
        assert.equal(preflight.status, 204, clientName);
        assert.equal(preflight.headers.get('access-control-allow-origin'), origin);
        assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/i);
        const client = await connectClient(target, { bearer: token, headers: { origin }, name: 'inspector-client' });
        assert.match(JSON.stringify(await client.callTool({ name: 'read_graph', arguments: {} })), /from-claude/, clientName);
        await client.close();
      } else {
        // 2025-era SDK agents, and the 2026-07-28 ones (SDK v2), on the same URL.
        const v1 = await connectClient(target, { bearer: inUrl ? undefined : token });
        assert.match(JSON.stringify(await v1.callTool({ name: 'read_graph', arguments: {} })), /from-claude/, clientName);
        await v1.close();
        const v2 = await connectV2(target, { token: inUrl ? undefined : token, mode: 'pin-2026' });
        assert.equal(v2.era, 'modern');
        assert.match(JSON.stringify(await v2.client.callTool({ name: 'read_graph', arguments: {} })), /from-claude/, `${clientName} (2026-07-28)`);
        await v2.close();
      }
    }
  });
});
