/**
 * The core's header stage for 2026 requests: the `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and
 * `Mcp-Param-*` headers must say what the body says. Checked before any message hook runs (a mismatch
 * would let something routing on headers and something reading the body disagree), and recomputed
 * after plugins changed the body, so the upstream's own check sees headers that match what it gets.
 * Plugins never touch these headers.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { argumentAt, decodeHeaderValue, encodeHeaderValue, mirrorHeadersOf, type HeaderDeclaration } from './mirror-headers.ts';
import { HEADER, META, NAMED_METHODS } from './versions.ts';

type Request = { method: string; params?: unknown };

/**
 * What is wrong with a 2026 request's mirror headers, in words a person can act on, or undefined.
 * `declarations`: the tool's `x-mcp-header` declarations when the gateway has seen the tool listed
 * (without them only the headers a client sent can be checked, not the ones it left out).
 */
export function headerMismatch(headers: IncomingHttpHeaders, request: Request, declarations: readonly HeaderDeclaration[] | undefined): string | undefined {
  const params = isObject(request.params) ? request.params : {};
  const bodyVersion = isObject(params._meta) ? params._meta[META.protocolVersion] : undefined;
  const version = headers[HEADER.protocolVersion];
  if (version === undefined) return 'the MCP-Protocol-Version header is missing';
  if (typeof bodyVersion === 'string' && version !== bodyVersion) {
    return `the MCP-Protocol-Version header (${JSON.stringify(version)}) does not match the body's _meta version (${JSON.stringify(bodyVersion)})`;
  }
  const method = headers[HEADER.method];
  if (method === undefined) return 'the Mcp-Method header is missing';
  if (method !== request.method) return `the Mcp-Method header (${JSON.stringify(method)}) does not match the body's method (${JSON.stringify(request.method)})`;
  const field = NAMED_METHODS[request.method];
  if (field) {
    const sent = headers[HEADER.name];
    if (typeof sent !== 'string') return 'the Mcp-Name header is missing';
    const decoded = decodeHeaderValue(sent);
    if (decoded === undefined) return 'the Mcp-Name header carries invalid characters or invalid base64';
    if (decoded !== params[field]) return `the Mcp-Name header does not match the body's params.${field}`;
  }
  if (request.method !== 'tools/call' || !declarations) return undefined;
  for (const d of declarations) {
    const header = HEADER.paramPrefix + d.name.toLowerCase();
    const sent = headers[header];
    const value = argumentAt(params.arguments, d.path);
    if (value === undefined) {
      if (sent !== undefined) return `the ${headerName(d)} header is sent but the body has no value for it`;
      continue;
    }
    if (typeof sent !== 'string') return `the ${headerName(d)} header is missing (the tool declares it for argument ${d.path.join('.')})`;
    const decoded = decodeHeaderValue(sent);
    if (decoded === undefined) return `the ${headerName(d)} header carries invalid characters or invalid base64`;
    if (!sameValue(decoded, value)) return `the ${headerName(d)} header does not match the body's argument ${d.path.join('.')}`;
  }
  return undefined;
}

/**
 * Sets the mirror headers for a request a plugin changed. With the tool's declarations the
 * `Mcp-Param-*` set is recomputed from them; without, each header the client sent is followed to the
 * top-level argument it mirrored (its value matched exactly one) and takes that argument's new value.
 * `Mcp-Param-*` headers nobody declared are forwarded as they came, as the spec asks of intermediaries.
 */
export function recomputeHeaders(
  headers: IncomingHttpHeaders, before: Request, after: Request, declarations: readonly HeaderDeclaration[] | undefined,
): void {
  const version = headers[HEADER.protocolVersion];
  const computed = mirrorHeadersOf(after, declarations, typeof version === 'string' ? version : undefined);
  headers[HEADER.method] = computed[HEADER.method];
  if (computed[HEADER.name] !== undefined) headers[HEADER.name] = computed[HEADER.name];
  else delete headers[HEADER.name];
  if (after.method !== 'tools/call') return;
  if (declarations) {
    for (const d of declarations) delete headers[HEADER.paramPrefix + d.name.toLowerCase()];
    for (const [k, v] of Object.entries(computed)) if (k.startsWith(HEADER.paramPrefix)) headers[k] = v;
    return;
  }
  const oldArgs = argsOf(before);
  const newArgs = argsOf(after);
  for (const [name, sent] of Object.entries(headers)) {
    if (!name.startsWith(HEADER.paramPrefix) || typeof sent !== 'string') continue;
    const decoded = decodeHeaderValue(sent);
    const keys = Object.keys(oldArgs).filter((k) => isPrimitive(oldArgs[k]) && decoded !== undefined && sameValue(decoded, oldArgs[k] as Primitive));
    if (keys.length !== 1) continue;
    const now = newArgs[keys[0]];
    if (isPrimitive(now)) headers[name] = encodeHeaderValue(now);
    else delete headers[name];
  }
}

type Primitive = string | number | boolean;

/** Header text against a body value; integers compare numerically (`42.0` is `42`). */
function sameValue(header: string, value: Primitive): boolean {
  if (typeof value === 'number') return header.trim() !== '' && Number(header) === value;
  return header === String(value);
}

function headerName(d: HeaderDeclaration): string {
  return `Mcp-Param-${d.name}`;
}

function argsOf(r: Request): Record<string, unknown> {
  const params = isObject(r.params) ? r.params : {};
  return isObject(params.arguments) ? params.arguments : {};
}

function isPrimitive(v: unknown): v is Primitive {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
