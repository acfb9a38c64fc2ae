/**
 * The official MCP SDK client, connected through the gateway on either transport.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';

export interface ConnectOptions {
  transport?: 'streamable-http' | 'sse';
  /** Sent as `Authorization: Bearer <token>`. */
  bearer?: string;
  headers?: Record<string, string>;
  name?: string;
}

export async function connectClient(url: string | URL, opts: ConnectOptions = {}): Promise<Client> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
  const client = new Client({ name: opts.name ?? 'gateway-test', version: '1.0.0' }, { capabilities: {} });
  const target = new URL(url);
  const transport =
    opts.transport === 'sse'
      ? new SSEClientTransport(target, {
          requestInit: { headers },
          // The SSE GET goes through EventSource, which takes its headers from a fetch override.
          // (its own headers, e.g. `Accept: text/event-stream`, may come as a Headers object: merge, never spread).
          eventSourceInit: {
            fetch: (u, init) => {
              const merged = new Headers(init?.headers);
              for (const [k, v] of Object.entries(headers)) merged.set(k, v);
              return fetch(u, { ...init, headers: merged });
            },
          },
        })
      : new StreamableHTTPClientTransport(target, { requestInit: { headers } });
  await client.connect(transport);
  return client;
}
