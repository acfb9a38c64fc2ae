/**
 * Shared by the stdio bridge tests: a bridge from a config snippet, SDK clients that talk to it as the
 * core would (secret + principal headers), and /proc probes for children and descriptors.
 */
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { Readable, Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioUpstreamSchema, type StdioUpstreamConfig } from '../../config/schema.ts';
import { startStdioBridge, type StdioBridge, TENANT_HEADER, SUB_HEADER } from '../../gateway/stdio/bridge.ts';

export interface CapturedLog {
  log: Logger;
  lines(): Array<Record<string, unknown>>;
}

export function captureLog(level: pino.Level = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level }, sink), lines: () => lines };
}

/** Validates a config snippet with the real schema (so defaults apply) and starts a bridge. */
export async function bridgeFor(
  stdio: Record<string, unknown>,
  opts: { configDir: string; log?: Logger; name?: string },
): Promise<StdioBridge> {
  const cfg: StdioUpstreamConfig = StdioUpstreamSchema.parse({ stdio }).stdio;
  return startStdioBridge(opts.name ?? 'test', cfg, { log: opts.log ?? pino({ level: 'silent' }), configDir: opts.configDir });
}

/** Headers the core would send for a principal. */
export function principalHeaders(bridge: StdioBridge, tenant: string, sub = 'user'): Record<string, string> {
  return { ...bridge.headers, [TENANT_HEADER]: tenant, [SUB_HEADER]: sub };
}

export async function connect(
  bridge: StdioBridge,
  tenant: string,
  sub = 'user',
  capabilities: Record<string, unknown> = {},
  opts: { fetch?: typeof fetch } = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: `test-${tenant}-${sub}`, version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(bridge.target), {
    requestInit: { headers: principalHeaders(bridge, tenant, sub) },
    fetch: opts.fetch,
  });
  await client.connect(transport);
  return { client, transport };
}

/** Text of the first content item of a tool result. */
export function textOf(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content ?? [];
  return content.map((c) => c.text ?? '').join('');
}

/** Pids of this process's live children, and how many of them are zombies. */
export function children(): { pids: number[]; zombies: number } {
  const pids: number[] = [];
  let zombies = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    const ppid = Number(rest[1]);
    if (ppid !== process.pid) continue;
    if (state === 'Z') zombies++;
    pids.push(Number(entry));
  }
  return { pids, zombies };
}

export function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 25): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * fetch over node:http with one connection per request. The global fetch pools keep-alive sockets
 * (both ends live in this process), which would hide or fake descriptor leaks in the leak test.
 */
export const oneShotFetch: typeof fetch = (input, init) =>
  new Promise<Response>((resolve, reject) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    const req = http.request(url, {
      method: init?.method ?? 'GET',
      headers: Object.fromEntries(headers),
      agent: false,
      signal: init?.signal ?? undefined,
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const out = new Headers();
      for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') out.set(k, v);
      const nullBody = res.statusCode === 202 || res.statusCode === 204 || init?.method === 'HEAD';
      if (nullBody) res.resume();
      resolve(new Response(nullBody ? null : (Readable.toWeb(res) as ReadableStream), { status: res.statusCode, headers: out }));
    });
    req.end(init?.body === undefined || init.body === null ? undefined : String(init.body));
  });

/** The bridge's refusal body: a JSON-RPC error whose `data.code` is the stable GW_ERR_ code. */
export interface RefusalBody {
  jsonrpc: '2.0';
  id: string | number | null;
  error: { code: number; message: string; data: { code: string } };
}

export async function refusalOf(res: Response): Promise<RefusalBody> {
  return (await res.json()) as RefusalBody;
}

/** Live processes (zombies excluded) in the process group `pgid`, wherever they were reparented. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[2]) === pgid && rest[0] !== 'Z') out.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}
