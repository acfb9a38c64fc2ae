/**
 * Wire-level pieces of the federation end-to-end tests:
 * - a recording HTTP forwarder put in front of a member, so a test can see what reached the member
 *   (and, as importantly, what never did) without touching the member itself;
 * - raw Streamable HTTP calls through the gateway for what the SDK clients hide (HTTP status, the
 *   JSON-RPC error object with its id and data), each bounded by a deadline so a hang fails the test
 *   instead of stalling the run.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Recorded {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** The JSON-RPC messages of a POST body (one, or the members of a batch); [] for GET/DELETE. */
  messages: Array<Record<string, any>>;
  /** The member's HTTP status, once its answer's head arrived. */
  status?: number;
  /** True once the exchange is over (answer sent, or either side gone). */
  ended?: boolean;
}

export interface RecordingProxy {
  /** e.g. `http://127.0.0.1:40123`; the target's path is kept (`${url}/mcp` reaches `${target}/mcp`). */
  url: string;
  port: number;
  requests: Recorded[];
  /** Every recorded JSON-RPC message with this method. */
  sent(method: string): Array<Record<string, any>>;
  /** Stops listening and drops every open connection: the member is then refused like a dead server. */
  close(): Promise<void>;
}

/** Forwards every request to `target` (an origin, `http://127.0.0.1:PORT`) and records it. */
export async function startRecordingProxy(target: string): Promise<RecordingProxy> {
  const to = new URL(target);
  const requests: Recorded[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      let messages: Array<Record<string, any>> = [];
      if (body.length > 0) {
        try {
          const parsed = JSON.parse(body.toString('utf8'));
          messages = Array.isArray(parsed) ? parsed : [parsed];
        } catch {
          messages = [{ unparsable: body.toString('utf8') }];
        }
      }
      const entry: Recorded = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, messages };
      requests.push(entry);
      const up = http.request(
        { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: { ...req.headers, host: to.host } },
        (ur) => {
          entry.status = ur.statusCode;
          res.writeHead(ur.statusCode ?? 502, ur.headers);
          ur.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      // The gateway gave up (a cancelled stream, a closed GET): so does the member's side.
      res.on('close', () => {
        entry.ended = true;
        up.destroy();
      });
      up.end(body);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    sent: (method) => requests.flatMap((r) => r.messages).filter((m) => m.method === method),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

const ACCEPT = 'application/json, text/event-stream';
/** Longest wait for one raw answer: far above any normal latency, far below the test timeout. */
export const RAW_DEADLINE_MS = 60_000;

export interface RawSession {
  url: string;
  token: string;
  sessionId: string;
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  /** JSON-RPC messages of the body, whether it was JSON (one or a batch) or SSE events. */
  messages: Array<Record<string, any>>;
  text: string;
}

function parseBody(type: string, text: string): Array<Record<string, any>> {
  if (type.includes('text/event-stream')) {
    const out: Array<Record<string, any>> = [];
    for (const event of text.split(/\r?\n\r?\n/)) {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data) out.push(JSON.parse(data));
    }
    return out;
  }
  if (!text) return [];
  const parsed = JSON.parse(text);
  return Array.isArray(parsed) ? parsed : [parsed];
}

async function rawPost(url: string, headers: Record<string, string>, body: unknown): Promise<RawAnswer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { accept: ACCEPT, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(RAW_DEADLINE_MS),
  });
  const text = await res.text();
  let messages: Array<Record<string, any>> = [];
  try {
    messages = parseBody(res.headers.get('content-type') ?? '', text);
  } catch {
    /* not JSON-RPC: the test asserts on `text` */
  }
  return { status: res.status, headers: res.headers, messages, text };
}

/** Initializes a 2025-06-18 session with plain fetch and sends `notifications/initialized`. */
export async function openRawSession(url: string, token: string): Promise<RawSession> {
  const init = await rawPost(url, { authorization: `Bearer ${token}` }, {
    jsonrpc: '2.0', id: 0, method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw-federation-test', version: '1' } },
  });
  if (init.status !== 200) throw new Error(`initialize: HTTP ${init.status} ${init.text}`);
  const sessionId = init.headers.get('mcp-session-id');
  if (!sessionId) throw new Error(`initialize: no Mcp-Session-Id (${init.text})`);
  const session = { url, token, sessionId };
  const ack = await rawPost(url, sessionHeaders(session), { jsonrpc: '2.0', method: 'notifications/initialized' });
  if (ack.status !== 202) throw new Error(`notifications/initialized: HTTP ${ack.status} ${ack.text}`);
  return session;
}

function sessionHeaders(s: RawSession): Record<string, string> {
  return { authorization: `Bearer ${s.token}`, 'mcp-session-id': s.sessionId, 'mcp-protocol-version': '2025-06-18' };
}

let nextId = 7000;

/** Sends one request on the session; returns the answer and the id it was sent with. */
export async function rawRequest(s: RawSession, method: string, params: Record<string, unknown> = {}): Promise<RawAnswer & { id: number; reply?: Record<string, any> }> {
  const id = nextId++;
  const answer = await rawPost(s.url, sessionHeaders(s), { jsonrpc: '2.0', id, method, params });
  return { ...answer, id, reply: answer.messages.find((m) => m.id === id && ('result' in m || 'error' in m)) };
}

/** Ends the session (DELETE); never throws. */
export async function closeRawSession(s: RawSession): Promise<void> {
  await fetch(s.url, { method: 'DELETE', headers: sessionHeaders(s), signal: AbortSignal.timeout(RAW_DEADLINE_MS) }).then((r) => r.text(), () => {});
}

/** One stateless 2026-07-28 request, headers as a conforming client computes them. */
export async function raw2026(url: string, token: string, method: string, params: Record<string, unknown> = {}): Promise<RawAnswer & { id: number; reply?: Record<string, any> }> {
  const id = nextId++;
  const _meta = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'raw-2026-federation-test', version: '1' },
  };
  const name = typeof params.name === 'string' ? params.name : typeof params.uri === 'string' ? params.uri : undefined;
  const answer = await rawPost(url, {
    authorization: `Bearer ${token}`, 'mcp-protocol-version': '2026-07-28', 'mcp-method': method,
    ...(name !== undefined ? { 'mcp-name': name } : {}),
  }, { jsonrpc: '2.0', id, method, params: { ...params, _meta } });
  return { ...answer, id, reply: answer.messages.find((m) => m.id === id && ('result' in m || 'error' in m)) };
}
