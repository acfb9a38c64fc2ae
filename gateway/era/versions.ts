/**
 * The two eras of MCP, as the gateway tells them apart.
 *
 * - `2025`: protocol versions 2024-11-05 … 2025-11-25. An `initialize` handshake, `Mcp-Session-Id`
 *   sessions, a GET stream, server-initiated requests on SSE streams.
 * - `2026`: protocol versions 2026-07-28 and later. Stateless: every request carries its version and
 *   capabilities in `params._meta`, `server/discover` replaces `initialize`, `subscriptions/listen`
 *   replaces the GET stream, multi round-trip requests (`input_required`) replace server-initiated
 *   requests, and POSTs carry `Mcp-Method`/`Mcp-Name`/`Mcp-Param-*` headers mirroring the body.
 */
export type Era = '2025' | '2026';

/** The newest revision the gateway speaks; the one it uses when it talks 2026 to an upstream itself. */
export const MODERN_VERSION = '2026-07-28';
/** The newest 2025-era revision; the one it uses when it talks 2025 to an upstream itself. */
export const LEGACY_VERSION = '2025-11-25';
/** Revisions the gateway knows. A version it does not know is passed through to the upstream to judge. */
export const MODERN_VERSIONS: readonly string[] = [MODERN_VERSION];
export const LEGACY_VERSIONS: readonly string[] = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];

/** `_meta` keys of a 2026 request (and of a result's server identity). */
export const META = {
  protocolVersion: 'io.modelcontextprotocol/protocolVersion',
  clientCapabilities: 'io.modelcontextprotocol/clientCapabilities',
  clientInfo: 'io.modelcontextprotocol/clientInfo',
  serverInfo: 'io.modelcontextprotocol/serverInfo',
  logLevel: 'io.modelcontextprotocol/logLevel',
  subscriptionId: 'io.modelcontextprotocol/subscriptionId',
} as const;

/** HTTP headers of the 2026 transport (lower case, as Node presents them). */
export const HEADER = {
  protocolVersion: 'mcp-protocol-version',
  method: 'mcp-method',
  name: 'mcp-name',
  paramPrefix: 'mcp-param-',
  session: 'mcp-session-id',
} as const;

/**
 * The era of a protocol version string. Versions are dates, so anything at or after the first modern
 * revision is modern; a value that is not a date is not an era the gateway can name.
 */
export function eraOfVersion(version: unknown): Era | undefined {
  if (typeof version !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(version)) return undefined;
  return version >= MODERN_VERSION ? '2026' : '2025';
}

/** Methods whose `Mcp-Name` header mirrors `params.name` or `params.uri`. */
export const NAMED_METHODS: Readonly<Record<string, 'name' | 'uri'>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
};

/** Methods that may answer `input_required` (multi round-trip requests). */
export const MRTR_METHODS: ReadonlySet<string> = new Set(['tools/call', 'prompts/get', 'resources/read']);
