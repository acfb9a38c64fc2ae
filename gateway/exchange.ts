/**
 * The concrete Exchange: per-request state shared by the pipeline and the proxy.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Exchange, Key, RouteInfo, Transport } from './contract.ts';

/** Headers never forwarded upstream: hop-by-hop (RFC 9110 §7.6.1) and the client's own credentials. */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'http2-settings',
]);
/** No token passthrough (MCP authorization spec): the upstream gets its own credential from config. */
export const CLIENT_CREDENTIALS = new Set(['authorization', 'cookie']);

export class GatewayExchange implements Exchange {
  readonly id: string;
  readonly route: RouteInfo;
  readonly req: IncomingMessage;
  readonly method: string;
  url: URL;
  readonly upstreamHeaders: IncomingHttpHeaders;
  sessionId: string | undefined;
  transport: Transport;
  readonly startedAt: bigint;
  readonly #parentLog: Logger;
  #log: Logger | undefined;
  #state: Map<Key<unknown>, unknown> | undefined;

  constructor(init: { id: string; route: RouteInfo; req: IncomingMessage; url: URL; log: Logger; transport?: Transport }) {
    this.id = init.id;
    this.route = init.route;
    this.req = init.req;
    this.method = init.req.method ?? 'GET';
    this.url = init.url;
    this.#parentLog = init.log;
    this.transport = init.transport ?? 'unknown';
    this.startedAt = process.hrtime.bigint();
    this.upstreamHeaders = forwardableHeaders(init.req.headers);
  }

  /** Bound to this exchange and route; made on first use (most exchanges never log). */
  get log(): Logger {
    this.#log ??= this.#parentLog.child({ exchange: this.id, route: this.route.name });
    return this.#log;
  }

  get<T>(key: Key<T>): T | undefined {
    return this.#state?.get(key as Key<unknown>) as T | undefined;
  }

  set<T>(key: Key<T>, value: T): void {
    (this.#state ??= new Map()).set(key as Key<unknown>, value);
  }
}

/** The client's headers as they may go upstream: no hop-by-hop headers, no client credentials. */
export function forwardableHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  // Headers named in `Connection:` are hop-by-hop too.
  const connection = headers.connection;
  const named = connection ? new Set(connection.toLowerCase().split(',').map((s) => s.trim())) : undefined;
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || HOP_BY_HOP.has(k) || CLIENT_CREDENTIALS.has(k) || named?.has(k)) continue;
    out[k] = v;
  }
  return out;
}
