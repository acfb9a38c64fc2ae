/**
 * What a traced exchange's request says about itself, for span names and attributes: the MCP method,
 * its target (tool, prompt, resource), the JSON-RPC id, and the trace context a client put in
 * `params._meta` (SEP-414: the unprefixed keys `traceparent`, `tracestate`, `baggage`).
 *
 * Read only when tracing is on, from the body as the client sent it (before any plugin rewrote it):
 * one JSON.parse of a lone message, the same cap as the gateway's other side reads.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { HEADER, META } from '../era/versions.ts';

export interface McpRequestInfo {
  method?: string;
  /** `gen_ai.tool.name` for tools/call. */
  tool?: string;
  /** `gen_ai.prompt.name` for prompts/get. */
  prompt?: string;
  /** `mcp.resource.uri` for resources/*. */
  resourceUri?: string;
  /** The JSON-RPC id as a string; absent for notifications and batches. */
  requestId?: string;
  protocolVersion?: string;
  /** `params._meta.traceparent` / `tracestate`, when strings. */
  metaTraceparent?: string;
  metaTracestate?: string;
}

const MAX_PARSED = 1_000_000;

/**
 * Client-chosen text, bounded: a span keeps its name and attributes until exported, and a collector that
 * is down lets thousands wait. A cut value is copied, since a slice would keep the whole string alive.
 */
function bounded(v: unknown, max: number): string | undefined {
  if (typeof v !== 'string') return undefined;
  return v.length <= max ? v : Buffer.from(v.slice(0, max)).toString();
}

export function readMcpRequest(method: string, headers: IncomingHttpHeaders, body: Buffer | undefined): McpRequestInfo {
  const info: McpRequestInfo = {};
  const version = bounded(headers[HEADER.protocolVersion], 64);
  if (version !== undefined) info.protocolVersion = version;
  if (method !== 'POST' || !body || body.length === 0 || body.length > MAX_PARSED) return info;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return info;
  }
  // A batch has no one method to name the span after (2025-03-26 only; later revisions removed them).
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return info;
  const m = value as { method?: unknown; id?: unknown; params?: Record<string, unknown> };
  if (typeof m.method !== 'string') return info;
  info.method = bounded(m.method, 128);
  if (typeof m.id === 'string' || typeof m.id === 'number') info.requestId = bounded(String(m.id), 128);
  const params = m.params !== null && typeof m.params === 'object' ? m.params : undefined;
  if (!params) return info;
  const name = bounded(params.name, 256);
  if (m.method === 'tools/call') info.tool = name;
  else if (m.method === 'prompts/get') info.prompt = name;
  else if (m.method.startsWith('resources/') && typeof params.uri === 'string') info.resourceUri = bounded(params.uri, 1024);
  // A 2025 client names its version in initialize's params before any header carries it.
  if (m.method === 'initialize' && typeof params.protocolVersion === 'string') info.protocolVersion = bounded(params.protocolVersion, 64);
  const meta = params._meta !== null && typeof params._meta === 'object' ? (params._meta as Record<string, unknown>) : undefined;
  if (meta) {
    if (typeof meta.traceparent === 'string') info.metaTraceparent = meta.traceparent;
    if (typeof meta.tracestate === 'string') info.metaTracestate = meta.tracestate;
    const v = meta[META.protocolVersion];
    if (typeof v === 'string') info.protocolVersion = bounded(v, 64);
  }
  return info;
}

/**
 * The body with the client's `_meta.traceparent` value replaced, so that an upstream reading `_meta`
 * parents its spans on the gateway's call as one reading the header does. Done on the bytes, not by
 * re-serializing (which could change numbers and key order): a W3C version-00 value has a fixed length,
 * so the body keeps its size. Left alone when the old value is not found exactly once.
 */
export function replaceMetaTraceparent(body: Buffer, previous: string, next: string): Buffer | undefined {
  if (previous.length !== next.length || previous === next) return undefined;
  const quoted = `"${previous}"`;
  const at = body.indexOf(quoted, 0, 'latin1');
  if (at < 0 || body.indexOf(quoted, at + 1, 'latin1') >= 0) return undefined;
  const out = Buffer.from(body);
  out.write(next, at + 1, 'latin1');
  return out;
}
