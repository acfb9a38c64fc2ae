/**
 * graph-rewrite's listing answers: results that name graphs one per line keep only the caller's own,
 * unprefixed. Failures are withheld, since an upstream's error text could name other tenants' graphs.
 */
import type { TenantNames } from './names.ts';

/** JSON-RPC "internal error". */
const RPC_INTERNAL_ERROR = -32603;

/** Text that replaces a failed listing's error: the upstream's text could name other tenants' graphs. */
const LISTING_FAILED = 'The upstream could not list graphs (its error text is withheld by the gateway).';

/** A `tools/call` listing result: text content filtered line by line, everything else dropped. */
export function filterToolListing(result: unknown, error: unknown, linePrefix: string, names: TenantNames): { result?: unknown; error?: unknown } {
  if (result === undefined) return { error: withheldError(error) };
  if (!isObject(result)) return { result: { content: [] } };
  const content = Array.isArray(result.content) ? result.content : [];
  if (result.isError === true) return { result: { content: [{ type: 'text', text: LISTING_FAILED }], isError: true } };
  const kept = content
    .filter((c): c is { type: 'text'; text: string } => isObject(c) && c.type === 'text' && typeof c.text === 'string')
    .map((c) => ({ ...c, text: names.filterListing(c.text, linePrefix) }));
  // structuredContent is dropped: its shape is unknown, so it cannot be filtered.
  const { structuredContent: _dropped, ...rest } = result;
  return { result: { ...rest, content: kept } };
}

/** A `resources/read` listing result: each text content filtered, binary contents dropped. */
export function filterResourceListing(result: unknown, error: unknown, linePrefix: string, names: TenantNames): { result?: unknown; error?: unknown } {
  if (result === undefined) return { error: withheldError(error) };
  if (!isObject(result)) return { result: { contents: [] } };
  const contents = Array.isArray(result.contents) ? result.contents : [];
  const kept = contents
    .filter((c): c is { text: string } => isObject(c) && typeof c.text === 'string')
    .map((c) => ({ ...c, text: names.filterListing(c.text, linePrefix) }));
  // Filtered per tenant: a 2026 result must not be kept by shared caches.
  return { result: { ...result, contents: kept, ...('cacheScope' in result ? { cacheScope: 'private' } : {}) } };
}

function withheldError(error: unknown): unknown {
  const code = isObject(error) && typeof error.code === 'number' ? error.code : RPC_INTERNAL_ERROR;
  return { code, message: LISTING_FAILED };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
