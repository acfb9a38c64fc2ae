/**
 * The 2026-07-28 request headers that mirror the body (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`): how
 * a tool declares them (`x-mcp-header` in its input schema), how values are encoded, and how a header
 * set is computed from a request, so the gateway can both check what a client sent and recompute what
 * the upstream must see after a plugin changed the body.
 */
import { HEADER, NAMED_METHODS } from './versions.ts';

/** One `x-mcp-header` declaration: the argument's property path and the header's name portion. */
export interface HeaderDeclaration {
  path: readonly string[];
  /** As declared (`Region` → header `Mcp-Param-Region`); compared case-insensitively. */
  name: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const SENTINEL = /^=\?base64\?(.*)\?=$/;
const PRIMITIVES = new Set(['string', 'integer', 'boolean']);

/**
 * The declarations of one tool's input schema, or `undefined` when an annotation breaks the spec's
 * rules (then the tool is invalid: clients drop it, and the gateway mirrors nothing for it). Only
 * chains of `properties` are walked: an annotation under `items`, `oneOf`, `$ref`… is never reached
 * here, which the spec also makes invalid; such a tool simply gets no `Mcp-Param-*` headers.
 */
export function declarationsOf(inputSchema: unknown): HeaderDeclaration[] | undefined {
  const out: HeaderDeclaration[] = [];
  const seen = new Set<string>();
  let valid = true;
  const walk = (schema: unknown, path: string[], depth: number) => {
    if (!isObject(schema) || depth > 16) return;
    const props = schema.properties;
    if (!isObject(props)) return;
    for (const [key, sub] of Object.entries(props)) {
      if (!isObject(sub)) continue;
      const name = sub['x-mcp-header'];
      if (name !== undefined) {
        const type = sub.type;
        if (typeof name !== 'string' || !TOKEN.test(name) || seen.has(name.toLowerCase()) || typeof type !== 'string' || !PRIMITIVES.has(type)) {
          valid = false;
          continue;
        }
        seen.add(name.toLowerCase());
        out.push({ path: [...path, key], name });
      }
      walk(sub, [...path, key], depth + 1);
    }
  };
  walk(inputSchema, [], 0);
  return valid ? out : undefined;
}

/** The header value for a body value, per the spec's value encoding (base64 sentinel when unsafe). */
export function encodeHeaderValue(value: string | number | boolean): string {
  const text = String(value);
  const safe = /^[\x20-\x7e\t]*$/.test(text) && text.trim() === text && !(text.startsWith('=?base64?') && text.endsWith('?='));
  return safe ? text : `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}

/** A header value decoded (base64 sentinel undone); `undefined` when it carries invalid characters. */
export function decodeHeaderValue(header: string): string | undefined {
  if (!/^[\x20-\x7e\t]*$/.test(header)) return undefined;
  const m = SENTINEL.exec(header);
  if (!m) return header;
  const decoded = Buffer.from(m[1], 'base64');
  // Base64 that does not round-trip exactly is not base64: Node decodes leniently, and the spec's
  // test cases refuse missing or extra padding as well as characters outside the alphabet.
  if (decoded.toString('base64') !== m[1]) return undefined;
  return decoded.toString('utf8');
}

/** The value at a declaration's path in a call's arguments, when it is a mirrorable primitive. */
export function argumentAt(args: unknown, path: readonly string[]): string | number | boolean | undefined {
  let v: unknown = args;
  for (const key of path) {
    if (!isObject(v)) return undefined;
    v = v[key];
  }
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)) ? v : undefined;
}

/**
 * Every mirror header a 2026 request must carry, lower-case names: `mcp-method`, `mcp-name` for named
 * methods, `mcp-protocol-version` when the body names a version, and `mcp-param-*` for the declared
 * arguments present in a `tools/call`.
 */
export function mirrorHeadersOf(
  request: { method: string; params?: unknown },
  declarations: readonly HeaderDeclaration[] | undefined,
  protocolVersion: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = { [HEADER.method]: request.method };
  if (protocolVersion !== undefined) out[HEADER.protocolVersion] = protocolVersion;
  const params = isObject(request.params) ? request.params : {};
  const field = NAMED_METHODS[request.method];
  if (field && typeof params[field] === 'string') out[HEADER.name] = encodeHeaderValue(params[field] as string);
  if (request.method === 'tools/call' && declarations) {
    for (const d of declarations) {
      const v = argumentAt(params.arguments, d.path);
      if (v !== undefined) out[HEADER.paramPrefix + d.name.toLowerCase()] = encodeHeaderValue(v);
    }
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
