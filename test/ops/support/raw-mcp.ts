/**
 * Streamable HTTP spoken with plain fetch, for the moments an SDK client hides what a test must see:
 * sending one session's requests to another gateway replica, or watching a standalone GET stream end.
 */
import { EventSourceParserStream, type EventSourceMessage } from 'eventsource-parser/stream';

export const ACCEPT = 'application/json, text/event-stream';
export const PROTOCOL_VERSION = '2025-06-18';

export interface RawAnswer {
  status: number;
  headers: Headers;
  /** The JSON-RPC messages of the body: the JSON document, or every SSE `message` event. */
  messages: Array<Record<string, unknown>>;
}

/** POSTs one JSON-RPC message and reads the whole answer (JSON or SSE). */
export async function post(url: string, message: unknown, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: JSON.stringify(message),
  });
  const type = res.headers.get('content-type') ?? '';
  const text = await res.text();
  let messages: Array<Record<string, unknown>> = [];
  if (type.startsWith('text/event-stream')) {
    messages = text
      .split(/\n\n/)
      .map((block) => block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n'))
      .filter((data) => data !== '')
      .map((data) => JSON.parse(data) as Record<string, unknown>);
  } else if (text) {
    const parsed = JSON.parse(text) as Record<string, unknown> | Array<Record<string, unknown>>;
    messages = Array.isArray(parsed) ? parsed : [parsed];
  }
  return { status: res.status, headers: res.headers, messages };
}

/** initialize + notifications/initialized; returns the client-facing (sealed) session id. */
export async function openSession(url: string, headers: Record<string, string> = {}): Promise<string> {
  const init = await post(url, {
    jsonrpc: '2.0', id: 1, method: 'initialize',
    params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'ops-test', version: '1' } },
  }, headers);
  if (init.status !== 200) throw new Error(`initialize answered ${init.status}: ${JSON.stringify(init.messages)}`);
  const sessionId = init.headers.get('mcp-session-id');
  if (!sessionId) throw new Error('initialize answered without Mcp-Session-Id');
  const initialized = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, sessionHeaders(sessionId, headers));
  if (initialized.status !== 202) throw new Error(`notifications/initialized answered ${initialized.status}`);
  return sessionId;
}

export function sessionHeaders(sessionId: string, extra: Record<string, string> = {}): Record<string, string> {
  return { 'mcp-session-id': sessionId, 'mcp-protocol-version': PROTOCOL_VERSION, ...extra };
}

/** The error code the gateway put in a refusal (`error.data.code`). */
export function gatewayCode(answer: RawAnswer): string | undefined {
  const error = answer.messages[0]?.error as { data?: { code?: string } } | undefined;
  return error?.data?.code;
}

export interface OpenStream {
  status: number;
  /** Every event received so far, with the time it arrived (performance.now()). */
  events: Array<EventSourceMessage & { atMs: number }>;
  /** Resolves when the stream ended: `clean` when the server ended it, else the error. */
  ended: Promise<{ clean: boolean; error?: Error; atMs: number }>;
  /** Resolves when an event satisfies `predicate`, rejects after `timeoutMs`. */
  waitFor(predicate: (e: EventSourceMessage) => boolean, timeoutMs: number, what: string): Promise<EventSourceMessage>;
  close(): void;
}

/** Opens the standalone GET stream of a session and reads its events in the background. */
export async function openGetStream(url: string, headers: Record<string, string>): Promise<OpenStream> {
  const abort = new AbortController();
  const res = await fetch(url, { method: 'GET', headers: { accept: 'text/event-stream', ...headers }, signal: abort.signal });
  const events: OpenStream['events'] = [];
  const ended = (async () => {
    if (!res.body) return { clean: true, atMs: performance.now() };
    try {
      const reader = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return { clean: true, atMs: performance.now() };
        events.push({ ...value, atMs: performance.now() });
      }
    } catch (err) {
      return { clean: false, error: err as Error, atMs: performance.now() };
    }
  })();
  return {
    status: res.status,
    events,
    ended,
    async waitFor(predicate, timeoutMs, what) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find(predicate);
        if (found) return found;
        if (Date.now() > until) throw new Error(`GET stream: no ${what} within ${timeoutMs}ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    close: () => abort.abort(),
  };
}
