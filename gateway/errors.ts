/**
 * The gateway's own refusals: one table of stable codes, each with its HTTP status and JSON-RPC code.
 * Plugins define their own `GW_ERR_…` codes next to their code; these are the core's.
 *
 * JSON-RPC codes: the gateway's own stay in -32000…-32019, the range MCP 2026-07-28 leaves to
 * implementations (-32020…-32099 are the specification's); standard JSON-RPC codes where one fits.
 *
 * Every refusal body has one shape, a JSON-RPC error, so MCP clients show the message whatever the
 * status: `{"jsonrpc":"2.0","id":<request id or null>,"error":{"code":…,"message":…,"data":{"code":"GW_ERR_…"}}}`.
 */
import type { ServerResponse } from 'node:http';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';

export const CORE_ERRORS = {
  GW_ERR_NO_ROUTE: { status: 404, rpc: -32000 },
  GW_ERR_HOST_NOT_ALLOWED: { status: 403, rpc: -32000 },
  GW_ERR_ORIGIN_NOT_ALLOWED: { status: 403, rpc: -32000 },
  GW_ERR_BAD_FRAMING: { status: 400, rpc: -32600 },
  GW_ERR_BODY_TOO_LARGE: { status: 413, rpc: -32600 },
  GW_ERR_PARSE: { status: 400, rpc: -32700 },
  GW_ERR_INVALID_REQUEST: { status: 400, rpc: -32600 },
  GW_ERR_SESSION_NOT_FOUND: { status: 404, rpc: -32001 },
  GW_ERR_UPSTREAM_UNREACHABLE: { status: 502, rpc: -32000 },
  GW_ERR_UPSTREAM_TIMEOUT: { status: 504, rpc: -32000 },
  GW_ERR_UPSTREAM_RESPONSE_TOO_LARGE: { status: 502, rpc: -32000 },
  GW_ERR_UPSTREAM_BAD_RESPONSE: { status: 502, rpc: -32000 },
  // An upstream refused the gateway's own credential (upstream-auth.ts): not the client's to fix.
  GW_ERR_UPSTREAM_AUTH: { status: 502, rpc: -32000 },
  GW_ERR_PLUGIN_FAILED: { status: 500, rpc: -32603 },
  GW_ERR_SHUTTING_DOWN: { status: 503, rpc: -32000 },
  GW_ERR_STARTING: { status: 503, rpc: -32000 },
  GW_ERR_HEADERS_TOO_LARGE: { status: 431, rpc: -32600 },
  GW_ERR_DUPLICATE_HEADER: { status: 400, rpc: -32600 },
  GW_ERR_REQUEST_TIMEOUT: { status: 408, rpc: -32600 },
  GW_ERR_DUPLICATE_ID: { status: 400, rpc: -32600 },
  GW_ERR_TOO_MANY_PENDING: { status: 429, rpc: -32000 },
  GW_ERR_UPSTREAM_UNINSPECTABLE: { status: 502, rpc: -32000 },
  // MCP 2026-07-28 allocates -32020 to a header/body mismatch (HeaderMismatchError).
  GW_ERR_HEADER_MISMATCH: { status: 400, rpc: -32020 },
  GW_ERR_REQUEST_STATE_INVALID: { status: 400, rpc: -32602 },
} as const satisfies Record<string, { status: number; rpc: number }>;

export type CoreErrorCode = keyof typeof CORE_ERRORS;

/** A refusal on its way to the client. */
export interface Refusal {
  status: number;
  code: string;
  message: string;
  rpcCode: number;
  headers?: Record<string, string>;
  data?: Record<string, unknown>;
  /** Plugin that refused; absent for the gateway's own refusals. */
  plugin?: string;
}

export function coreRefusal(code: CoreErrorCode, message: string, extra?: Partial<Refusal>): Refusal {
  const e = CORE_ERRORS[code];
  return { status: e.status, rpcCode: e.rpc, code, message, ...extra };
}

export type JsonRpcId = string | number | null;

export function rpcError(id: JsonRpcId, rpcCode: number, message: string, data?: Record<string, unknown>): JSONRPCMessage {
  return { jsonrpc: '2.0', id, error: { code: rpcCode, message, ...(data ? { data } : {}) } } as unknown as JSONRPCMessage;
}

/** The JSON-RPC error a refusal turns into (the `data.code` carries the stable gateway code). */
export function refusalMessage(r: Refusal, id: JsonRpcId): JSONRPCMessage {
  return rpcError(id, r.rpcCode, r.message, { code: r.code, ...r.data });
}

/** Writes a refusal as the whole HTTP response. Never throws; does nothing if a head was already sent. */
export function sendRefusal(res: ServerResponse, r: Refusal, id: JsonRpcId, extraHeaders?: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(refusalMessage(r, id));
  res.writeHead(r.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...extraHeaders,
    ...r.headers,
  });
  res.end(body);
}
