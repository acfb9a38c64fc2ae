/**
 * A small purpose-built HTTP upstream for tests that need precise control over what the gateway sees:
 * it records every request it receives (method, path, query, headers, body, and whether the gateway
 * hung up before the answer was complete) and answers exactly as the test tells it to: JSON, SSE
 * events with pauses between them, a status code, after a delay, never, or by closing the socket.
 *
 * Real MCP servers are preferred everywhere else; this exists for refusals, timeouts, hygiene and
 * streaming assertions that a real server cannot be made to produce on demand.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RecordedRequest {
  method: string;
  /** Path and query as received, e.g. `/mcp?x=1`. */
  url: string;
  path: string;
  query: URLSearchParams;
  /** Header names in lower case, as Node parses them. */
  headers: http.IncomingHttpHeaders;
  /** Header lines exactly as sent (name, value, name, value …), to check casing and duplicates. */
  rawHeaders: string[];
  body: string;
  /** The body parsed as JSON when it is JSON, else undefined. */
  json: unknown;
  /** True once the connection closed before this request's answer was completely written. */
  aborted: boolean;
  /** True once the answer was completely written. */
  answered: boolean;
}

export interface SseEvent {
  data: string;
  event?: string;
  id?: string;
  /** Pause before this event is written. Default 0. */
  delayMs?: number;
}

/** How to answer one request. */
export type Reply =
  | { kind: 'json'; status?: number; headers?: Record<string, string>; body: unknown; delayMs?: number }
  | { kind: 'text'; status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  /**
   * An SSE response. After the last event: with `keepOpen` the stream stays open until the peer closes;
   * with `hangUp` the socket is destroyed (an upstream crashing mid-stream); else the response ends.
   */
  | { kind: 'sse'; status?: number; headers?: Record<string, string>; events: SseEvent[]; keepOpen?: boolean; hangUp?: boolean; delayMs?: number }
  /** Exact bytes written to the socket (status line, headers, body), which is then closed. */
  | { kind: 'raw'; bytes: string }
  /** Read the request, then say nothing, ever (until the connection is closed by the other side). */
  | { kind: 'never' }
  /** Destroy the socket without answering. */
  | { kind: 'close' };

export type Responder = (req: RecordedRequest) => Reply | Promise<Reply>;

export interface RecordingUpstream {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Changes how later requests are answered. */
  respond(responder: Responder): void;
  /** Resolves when `predicate` holds (polled), rejects after `timeoutMs`. */
  waitFor(predicate: () => boolean, timeoutMs?: number, what?: string): Promise<void>;
  /** Number of TCP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/** A JSON-RPC result for a request id, the most common answer. */
export function rpcResult(id: unknown, result: unknown = {}): Reply {
  return { kind: 'json', body: { jsonrpc: '2.0', id, result } };
}

function formatEvent(e: SseEvent): string {
  let out = '';
  if (e.event !== undefined) out += `event: ${e.event}\n`;
  if (e.id !== undefined) out += `id: ${e.id}\n`;
  for (const line of e.data.split('\n')) out += `data: ${line}\n`;
  return `${out}\n`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * @param responder how to answer; default: a JSON-RPC result echoing the request's id (or 202 for a
 * body without an id).
 */
export async function startRecordingUpstream(responder?: Responder): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = [];
  let current: Responder = responder ?? defaultResponder;
  const sockets = new Set<Socket>();
  let accepted = 0;
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'http://upstream.invalid');
      let json: unknown;
      try { json = body ? JSON.parse(body) : undefined; } catch { json = undefined; }
      const rec: RecordedRequest = {
        method: req.method ?? '', url: req.url ?? '', path: url.pathname, query: url.searchParams,
        headers: req.headers, rawHeaders: req.rawHeaders, body, json, aborted: false, answered: false,
      };
      requests.push(rec);
      res.once('close', () => { if (!res.writableFinished) rec.aborted = true; });
      res.once('finish', () => { rec.answered = true; });
      void answer(rec, res).catch(() => res.destroy());
    });
  });

  async function answer(rec: RecordedRequest, res: http.ServerResponse): Promise<void> {
    const reply = await current(rec);
    if (reply.kind === 'never') return;
    if (reply.kind === 'close') {
      res.socket?.destroy();
      return;
    }
    if (reply.kind === 'raw') {
      const socket = res.socket;
      socket?.end(reply.bytes, 'latin1');
      return;
    }
    if (reply.delayMs) await pause(reply.delayMs);
    if (res.destroyed) return;
    if (reply.kind === 'json') {
      const text = JSON.stringify(reply.body);
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...reply.headers });
      res.end(text);
      return;
    }
    if (reply.kind === 'text') {
      const text = reply.body ?? '';
      res.writeHead(reply.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), ...reply.headers });
      res.end(text);
      return;
    }
    res.writeHead(reply.status ?? 200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...reply.headers });
    res.flushHeaders();
    for (const e of reply.events) {
      if (e.delayMs) await pause(e.delayMs);
      if (res.destroyed) return;
      res.write(formatEvent(e));
    }
    if (reply.hangUp) res.socket?.destroy();
    else if (!reply.keepOpen) res.end();
  }

  /** A delay that does not keep the process alive after close(). */
  function pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { timers.delete(t); resolve(); }, ms);
      timers.add(t);
    });
  }

  server.on('connection', (s: Socket) => {
    accepted++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    respond(r) { current = r; },
    async waitFor(predicate, timeoutMs = 5000, what = 'condition') {
      const until = Date.now() + timeoutMs;
      while (!predicate()) {
        if (Date.now() > until) throw new Error(`recording upstream: timed out waiting for ${what}`);
        await sleep(10);
      }
    },
    connections: () => accepted,
    async close() {
      if (closed) return;
      closed = true;
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function defaultResponder(rec: RecordedRequest): Reply {
  const id = (rec.json as { id?: unknown } | undefined)?.id;
  if (rec.method === 'POST' && id !== undefined) return rpcResult(id);
  return { kind: 'text', status: 202 };
}
