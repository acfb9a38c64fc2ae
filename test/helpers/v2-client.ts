/**
 * Clients of both eras for the dual-era tests: the SDK v2 client (2026-07-28, pinned or auto-negotiated)
 * and the v1 SDK client (2025 `initialize` handshake). Both send `Authorization: Bearer <token>` when
 * given one and answer `elicitation/create` through one shared handler shape, so a test can drive the
 * same tool from either era and compare.
 */
import { Client, StreamableHTTPClientTransport, type McpSubscription } from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1Transport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema as V1ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

/** The text of a tools/call result (an SDK result of either era, or a raw message's `result`). */
export function textOf(result: unknown): string {
  return ((result as { content?: Array<{ text?: string }> }).content ?? []).map((c) => c.text ?? '').join('');
}

/** What an elicitation handler is shown: the `elicitation/create` params, era-neutral. */
export interface ElicitParams {
  message: string;
  mode?: string;
  requestedSchema?: unknown;
  [key: string]: unknown;
}

export interface ElicitAnswer {
  action: 'accept' | 'decline' | 'cancel';
  content?: Record<string, string | number | boolean | string[]>;
  [key: string]: unknown;
}

export type ElicitHandler = (params: ElicitParams) => ElicitAnswer | Promise<ElicitAnswer>;

export interface V2ConnectOptions {
  /** Sent as `Authorization: Bearer <token>` on every request. */
  token?: string;
  /** `'pin-2026'`: 2026-07-28 or fail (no fallback). `'auto'`: probe with `server/discover`, fall back to `initialize`. */
  mode: 'pin-2026' | 'auto';
  /**
   * Answers `elicitation/create`. On 2026-07-28 the SDK calls it inside `callTool()` when the server
   * answers `input_required`, and retries the call itself (MRTR), so tests just see the final result.
   */
  onElicit?: ElicitHandler;
  /**
   * Listen for tools list_changed: on 2026-07-28 a `subscriptions/listen` stream is opened and
   * acknowledged before `connectV2` resolves (so nothing published afterwards is missed); on a 2025
   * connection the notification arrives unsolicited (never, through a stateless upstream).
   */
  listChanged?: boolean;
  name?: string;
}

export interface V2Connection {
  client: Client;
  /** `'modern'` (2026-07-28) or `'legacy'` (2025), as negotiated. */
  era: 'modern' | 'legacy' | undefined;
  /** The listen stream when `listChanged` opened one on 2026-07-28. */
  subscription?: McpSubscription;
  /** Resolves on the next tools list_changed notification (or the earliest one not yet awaited). */
  toolsChanged(): Promise<void>;
  close(): Promise<void>;
}

/** Counts notifications and hands them to waiters one by one, so a test never polls or sleeps. */
function notificationQueue() {
  let pending = 0;
  const waiters: Array<() => void> = [];
  return {
    push() {
      const w = waiters.shift();
      if (w) w();
      else pending++;
    },
    next(): Promise<void> {
      if (pending > 0) {
        pending--;
        return Promise.resolve();
      }
      return new Promise(resolve => waiters.push(resolve));
    },
  };
}

function authHeaders(token?: string): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

export async function connectV2(url: string | URL, opts: V2ConnectOptions): Promise<V2Connection> {
  const client = new Client(
    { name: opts.name ?? 'v2-test-client', version: '1.0.0' },
    {
      capabilities: opts.onElicit ? { elicitation: { form: {} } } : {},
      versionNegotiation: { mode: opts.mode === 'pin-2026' ? { pin: '2026-07-28' } : 'auto' },
    },
  );
  if (opts.onElicit) {
    const onElicit = opts.onElicit;
    client.setRequestHandler('elicitation/create', async request => onElicit(request.params as ElicitParams));
  }
  const changes = notificationQueue();
  if (opts.listChanged) client.setNotificationHandler('notifications/tools/list_changed', async () => changes.push());

  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: authHeaders(opts.token) } });
  await client.connect(transport);
  const era = client.getProtocolEra();

  let subscription: McpSubscription | undefined;
  // `listen()` resolves on the server's acknowledgement, which is what makes a later addTool() observable.
  if (opts.listChanged && era === 'modern') subscription = await client.listen({ toolsListChanged: true });

  return {
    client,
    era,
    subscription,
    toolsChanged: () => changes.next(),
    async close() {
      await subscription?.close();
      await client.close();
    },
  };
}

export interface V1ConnectOptions {
  token?: string;
  onElicit?: ElicitHandler;
  name?: string;
}

export interface V1Connection {
  client: V1Client;
  close(): Promise<void>;
}

/** The 2025-era client: v1 SDK, `initialize` handshake over Streamable HTTP. */
export async function connectV1(url: string | URL, opts: V1ConnectOptions = {}): Promise<V1Connection> {
  const client = new V1Client(
    { name: opts.name ?? 'v1-test-client', version: '1.0.0' },
    { capabilities: opts.onElicit ? { elicitation: { form: {} } } : {} },
  );
  if (opts.onElicit) {
    const onElicit = opts.onElicit;
    client.setRequestHandler(V1ElicitRequestSchema, async request => onElicit(request.params as ElicitParams));
  }
  const transport = new V1Transport(new URL(url), { requestInit: { headers: authHeaders(opts.token) } });
  await client.connect(transport);
  return { client, close: () => client.close() };
}
