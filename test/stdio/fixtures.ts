/**
 * Shared by the stdio upstream tests: an upstream from a config snippet, SDK clients that reach it the
 * way the core does (each exchange dispatched in process, with the verified principal), and /proc
 * probes for children and descriptors.
 */
import { readdirSync, readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import { Readable, Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioUpstreamSchema, type StdioUpstreamConfig } from '../../config/schema.ts';
import type { Principal } from '../../gateway/contract.ts';
import { StdioUpstream } from '../../gateway/stdio/upstream.ts';

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

/** Validates a config snippet with the real schema (so defaults apply) and builds the upstream. */
export function upstreamFor(
  stdio: Record<string, unknown>,
  opts: { configDir: string; log?: Logger; name?: string; onSessionEnded?: (id: string) => void },
): StdioUpstream {
  const cfg: StdioUpstreamConfig = StdioUpstreamSchema.parse({ stdio }).stdio;
  const name = opts.name ?? 'test';
  const log = (opts.log ?? pino({ level: 'silent' })).child({ upstream: name });
  return new StdioUpstream(name, cfg, { log, configDir: opts.configDir, onSessionEnded: opts.onSessionEnded });
}

/** The verified principal the core hands the upstream. */
export function principal(tenant: string, sub = 'user'): Principal {
  return { issuer: 'test', tenant, subject: sub, scopes: [], claims: {} };
}

/** An upstream URL for SDK clients; the host is never dialled (dispatchFetch takes every request). */
export const UPSTREAM_URL = 'http://stdio.invalid/mcp';

/**
 * `fetch` for an SDK client that hands each request to the upstream as the core's stage 5 does: the
 * body already read, the principal verified, and a signal that aborts when the exchange ends (the
 * client gave up, or the answer was read to its end).
 */
export function dispatchFetch(upstream: StdioUpstream, tenant: string, sub = 'user'): typeof fetch {
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers: IncomingHttpHeaders = {};
    new Headers(init.headers).forEach((v, k) => {
      headers[k] = v;
    });
    const exchange = new AbortController();
    const onClientAbort = () => exchange.abort();
    init.signal?.addEventListener('abort', onClientAbort, { once: true });
    const res = await upstream.dispatch({
      method: init.method ?? 'GET',
      pathAndQuery: url.pathname + url.search,
      headers,
      body: typeof init.body === 'string' ? Buffer.from(init.body) : undefined,
      principal: principal(tenant, sub),
      signal: exchange.signal,
    });
    res.once('close', () => {
      init.signal?.removeEventListener('abort', onClientAbort);
      exchange.abort();
    });
    // The client left: the core destroys the upstream's answer.
    if (exchange.signal.aborted) res.destroy();
    else exchange.signal.addEventListener('abort', () => res.destroy(), { once: true });
    const out = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') out.set(k, v);
    const nullBody = res.statusCode === 202 || res.headers['content-length'] === '0';
    if (nullBody) res.resume();
    return new Response(nullBody ? null : (Readable.toWeb(res) as ReadableStream), { status: res.statusCode, headers: out });
  };
}

export async function connect(
  upstream: StdioUpstream,
  tenant: string,
  sub = 'user',
  capabilities: Record<string, unknown> = {},
): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: `test-${tenant}-${sub}`, version: '1.0.0' }, { capabilities });
  const transport = new StreamableHTTPClientTransport(new URL(UPSTREAM_URL), { fetch: dispatchFetch(upstream, tenant, sub) });
  await client.connect(transport);
  return { client, transport };
}

export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body (an event stream is read to its end). */
  text: string;
}

/** One exchange dispatched to the upstream directly, its answer read whole. */
export async function dispatchRaw(
  upstream: StdioUpstream,
  opts: { method?: string; tenant: string; sub?: string; headers?: Record<string, string>; body?: unknown; path?: string },
): Promise<RawAnswer> {
  const exchange = new AbortController();
  const res = await upstream.dispatch({
    method: opts.method ?? 'POST',
    pathAndQuery: opts.path ?? '/mcp',
    headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', ...opts.headers },
    body: opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body)),
    principal: principal(opts.tenant, opts.sub),
    signal: exchange.signal,
  });
  let text = '';
  for await (const chunk of res) text += String(chunk);
  exchange.abort();
  return { status: res.statusCode, headers: res.headers, text };
}

/** The JSON-RPC messages of an answer, whether JSON or an event stream. */
export function messagesOf(a: RawAnswer): Array<Record<string, any>> {
  if (String(a.headers['content-type'] ?? '').includes('text/event-stream')) {
    return a.text
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l.length > 6)
      .map((l) => JSON.parse(l.slice(6)));
  }
  return a.text ? [JSON.parse(a.text)] : [];
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

/** A refusal body: a JSON-RPC error whose `data.code` is the stable GW_ERR_ code. */
export interface RefusalBody {
  jsonrpc: '2.0';
  id: string | number | null;
  error: { code: number; message: string; data: { code: string } };
}

export async function refusalOf(res: Response | RawAnswer): Promise<RefusalBody> {
  return (res instanceof Response ? await res.json() : JSON.parse(res.text)) as RefusalBody;
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
