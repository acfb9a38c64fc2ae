/**
 * The JSON-RPC envelope as the gateway needs it: what kind a message is, its id, its method.
 *
 * The SDK's guards (`isJSONRPCRequest` …) validate the whole message with zod, which costs
 * microseconds per message on the hot path; routing only needs the envelope, and validating the rest
 * is the upstream's job. The types are the SDK's.
 */
import type { JSONRPCMessage, JSONRPCRequest, JSONRPCNotification } from '@modelcontextprotocol/server';
import type { JsonRpcId } from './errors.ts';

export type { JSONRPCMessage, JSONRPCRequest, JSONRPCNotification };

type Envelope = { jsonrpc?: unknown; id?: unknown; method?: unknown; result?: unknown; error?: unknown };

function validId(id: unknown): id is string | number {
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
}

export function isRequest(m: unknown): m is JSONRPCRequest {
  const e = m as Envelope;
  return !!e && typeof e === 'object' && typeof e.method === 'string' && validId(e.id);
}

export function isNotification(m: unknown): m is JSONRPCNotification {
  const e = m as Envelope;
  return !!e && typeof e === 'object' && typeof e.method === 'string' && e.id === undefined;
}

export function isResponse(m: unknown): boolean {
  const e = m as Envelope;
  return !!e && typeof e === 'object' && e.method === undefined && ('result' in e || 'error' in e);
}

/** A value that is shaped like some JSON-RPC 2.0 message. */
export function isMessage(m: unknown): m is JSONRPCMessage {
  const e = m as Envelope;
  return !!e && typeof e === 'object' && !Array.isArray(e) && e.jsonrpc === '2.0' &&
    (isRequest(e) || isNotification(e) || isResponse(e));
}

/** The id of a message, or null. */
export function idOf(m: unknown): JsonRpcId {
  const id = (m as Envelope | undefined)?.id;
  return validId(id) ? id : null;
}

/** Map key for an id: `1` and `"1"` are different ids. */
export function idKey(id: string | number): string {
  return typeof id === 'number' ? `n:${id}` : `s:${id}`;
}

/** `tools/call` → the tool's name; other methods → undefined. */
export function toolNameOf(m: unknown): string | undefined {
  const e = m as { method?: unknown; params?: { name?: unknown } };
  return e?.method === 'tools/call' && typeof e.params?.name === 'string' ? e.params.name : undefined;
}
