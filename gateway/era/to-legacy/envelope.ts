/**
 * What a 2026-07-28 server must refuse before it does anything with a request, checked by the to-legacy
 * translator because, in front of a 2025 upstream, the gateway is that server:
 * - `params._meta` without the protocol version or the client capabilities: 400, -32602;
 * - mirror headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`) that contradict
 *   the body: 400, -32020;
 * - a version it does not speak: 400, -32022, naming the versions it does and echoing the one asked;
 * - a method 2026-07-28 removed (`initialize`, `ping`, `logging/setLevel`, `resources/subscribe`,
 *   `resources/unsubscribe`): 404, -32601, even though the 2025 upstream behind would answer it.
 */
import type { UpstreamCall } from '../../runtime.ts';
import { headerMismatch } from '../header-check.ts';
import type { ToolHeaders } from '../tool-headers.ts';
import { META, MODERN_VERSION, MODERN_VERSIONS } from '../versions.ts';

export interface EnvelopeProblem {
  status: number;
  code: number;
  message: string;
  data?: unknown;
}


const REMOVED = new Set(['initialize', 'ping', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe']);

export function envelopeProblem(call: UpstreamCall, message: { method: string; params?: unknown }, tools?: ToolHeaders): EnvelopeProblem | undefined {
  const params = isObject(message.params) ? message.params : {};
  const meta = params._meta;
  if (!isObject(meta)) return invalidParams('params._meta is missing: a 2026-07-28 request carries its protocol version and client capabilities there');
  const version = meta[META.protocolVersion];
  if (typeof version !== 'string') return invalidParams(`params._meta["${META.protocolVersion}"] is missing`);
  if (!isObject(meta[META.clientCapabilities])) return invalidParams(`params._meta["${META.clientCapabilities}"] is missing (send {} when the client has none)`);
  const tool = message.method === 'tools/call' && typeof params.name === 'string' ? params.name : undefined;
  // Declarations the gateway has seen listed; an invalid one makes the tool mirror nothing.
  const known = tool !== undefined ? tools?.of(tool) : undefined;
  const mismatch = headerMismatch(call.headers, message, known === null ? [] : known);
  if (mismatch) return { status: 400, code: -32020, message: `Header mismatch: ${mismatch}` };
  if (!MODERN_VERSIONS.includes(version)) {
    return { status: 400, code: -32022, message: 'Unsupported protocol version', data: { supported: [MODERN_VERSION], requested: version } };
  }
  if (REMOVED.has(message.method)) return { status: 404, code: -32601, message: `Method not found: ${message.method} is not part of MCP ${version}` };
  return undefined;
}

function invalidParams(why: string): EnvelopeProblem {
  return { status: 400, code: -32602, message: `Invalid params: ${why}` };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
