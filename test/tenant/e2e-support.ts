/**
 * Shared pieces of the tenant end-to-end tests: HS256 tokens for the real `token` + `jwt` plugins, the
 * authentication part of a route, and raw Streamable HTTP calls for what the SDK client hides (HTTP
 * status, headers, batches).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AUDIENCE, ISSUER } from '../helpers/hs256-auth.ts';

export { AUDIENCE, GATEWAY_ENV, ISSUER, JWT_SECRET, tokenFor } from '../helpers/hs256-auth.ts';

/** Absolute path of the wire-recorder test plugin, for `- type: <path>` in gateway.yaml. */
export const WIRE_RECORDER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/tenant/wire-recorder.ts');

/** Plugins that establish PRINCIPAL from an HS256 bearer token (YAML block sequence items). */
export const AUTH_PLUGINS = `
      - { type: token }
      - type: jwt
        keys: { secret: "\${JWT_SECRET}" }
        algorithms: [HS256]
        issuer: ${ISSUER}
        audience: ${AUDIENCE}`;

const ACCEPT = 'application/json, text/event-stream';

/** Waits until the gateway's /readyz says every check (Redis included) passes. */
export async function waitReady(adminUrl: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const res = await fetch(`${adminUrl}/readyz`);
    last = await res.text();
    if (res.status === 200) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gateway not ready after ${timeoutMs}ms: ${last}`);
}

export interface RawSession {
  url: string;
  token: string;
  sessionId: string;
}

/** Initializes an MCP session with plain fetch (2025-06-18, Streamable HTTP). */
export async function openRawSession(url: string, token: string): Promise<RawSession> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, accept: ACCEPT, 'content-type': 'application/json' },
    body: JSON.stringify({
      jsonrpc: '2.0', id: 0, method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
  if (res.status !== 200) throw new Error(`initialize: ${res.status} ${await res.text()}`);
  await res.text();
  const sessionId = res.headers.get('mcp-session-id');
  if (!sessionId) throw new Error('initialize: no session id');
  const session = { url, token, sessionId };
  const ack = await post(session, { jsonrpc: '2.0', method: 'notifications/initialized' });
  if (ack.status !== 202) throw new Error(`initialized: ${ack.status}`);
  return session;
}

export interface RawAnswer {
  status: number;
  headers: Headers;
  /** JSON-RPC messages of the body, whether it was JSON (one or a batch) or SSE events. */
  messages: Array<Record<string, any>>;
}

/** POSTs one message or a batch on a session and reads every JSON-RPC message of the answer. */
export async function post(s: RawSession, body: unknown): Promise<RawAnswer> {
  const res = await fetch(s.url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${s.token}`, accept: ACCEPT, 'content-type': 'application/json',
      'mcp-session-id': s.sessionId, 'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  const type = res.headers.get('content-type') ?? '';
  let messages: Array<Record<string, any>> = [];
  if (type.includes('text/event-stream')) {
    for (const event of text.split(/\r?\n\r?\n/)) {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
      if (data) messages.push(JSON.parse(data));
    }
  } else if (text) {
    const parsed = JSON.parse(text);
    messages = Array.isArray(parsed) ? parsed : [parsed];
  }
  return { status: res.status, headers: res.headers, messages };
}

/** The body of a gateway refusal: a JSON-RPC error with the stable code in `data.code`. */
export interface RefusalBody {
  error: { code: number; message: string; data: { code: string } & Record<string, unknown> };
}

let ids = 1000;

export function callMessage(tool: string, args: Record<string, unknown> = {}) {
  return { jsonrpc: '2.0', id: ids++, method: 'tools/call', params: { name: tool, arguments: args } };
}

/** The text of a tools/call result's first content item: of a raw response message, or of an SDK result. */
export function textOf(m: Record<string, any> | undefined): string {
  const content = m?.result?.content ?? m?.content;
  return content?.[0]?.text ?? '';
}
