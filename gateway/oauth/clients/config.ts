/**
 * Who may be a client of the gateway's authorization server: the `clients:` part of the
 * `authorization:` section. Every default is written next to its field; docs/oauth-clients.md is the
 * reader's version.
 */
import { z } from 'zod';
import { bool, bytes, duration, int } from '../../../config/units.ts';

/** Shell-style host patterns (`*.example.com`, `app.example.com`); matched case-insensitively. */
const hostPattern = z.string().min(1);

export const MetadataDocumentsSchema = z.strictObject({
  /**
   * Accept Client ID Metadata Documents: a `client_id` that is an https URL is fetched and its JSON
   * describes the client. The 2026-07-28 MCP spec's recommended registration. Default true.
   */
  enabled: bool().default(true),
  /** Largest document accepted; a longer one is cut off while it streams in. Default 5kib (5120 bytes). */
  maxBytes: bytes().pipe(z.number().min(256).max(1_048_576)).default(5_120),
  /** Time for the whole fetch: DNS, connection, TLS, headers and body. Default 5s. */
  timeout: duration().pipe(z.number().min(1)).default(5_000),
  /**
   * How long a fetched document is reused. The response's `Cache-Control: max-age` lowers it (never
   * raises it); `no-store`/`no-cache` mean it is fetched each time. Default 10m.
   */
  cacheTtl: duration().default(600_000),
  /**
   * How long a document that could not be fetched or was unusable stays refused without asking again,
   * so a bad `client_id` cannot make the gateway hammer somebody else's server. Default 30s.
   */
  failureTtl: duration().default(30_000),
  /** Most documents (and remembered failures) kept in memory. Default 1000. */
  cacheSize: int().pipe(z.number().min(1)).default(1_000),
  /**
   * Trust policy: when set, only `client_id` URLs on these hosts are accepted (e.g. `claude.ai`,
   * `*.vscode.dev`). Default: any public host.
   */
  allowHosts: z.array(hostPattern).min(1).optional(),
  /**
   * Allow documents on loopback, private (RFC 1918, CGNAT, ULA) and link-local addresses, and plain
   * `http:` URLs. For tests and on-prem clients only: it lets anyone who can start a sign-in make the
   * gateway send GET requests into its own network. A warning is logged at start. Default false.
   */
  allowPrivateNetworks: bool().default(false),
});

export const DynamicRegistrationSchema = z.strictObject({
  /**
   * Accept RFC 7591 registrations at the registration endpoint. Deprecated by the 2026-07-28 MCP spec
   * but still how most clients (Claude, VS Code, Cursor, mcp-remote) register. Default true.
   */
  enabled: bool().default(true),
  /**
   * A registered client unused this long is forgotten (each use extends it); the client then gets
   * `invalid_client` and registers again. Default 30d.
   */
  clientTtl: duration().pipe(z.number().min(60_000)).default(30 * 86_400_000),
  /** Largest registration request (its JSON). Default 16kb. */
  maxBytes: bytes().pipe(z.number().min(1_024)).default(16_000),
  /** Most `redirect_uris` one client may register. Default 20. */
  maxRedirectUris: int().pipe(z.number().min(1).max(100)).default(20),
});

const metadataDocumentsDefault = {
  enabled: true, maxBytes: 5_120, timeout: 5_000, cacheTtl: 600_000, failureTtl: 30_000, cacheSize: 1_000,
  allowPrivateNetworks: false,
};
const dynamicRegistrationDefault = { enabled: true, clientTtl: 30 * 86_400_000, maxBytes: 16_000, maxRedirectUris: 20 };

export const ClientsConfigSchema = z.strictObject({
  metadataDocuments: MetadataDocumentsSchema.default(metadataDocumentsDefault),
  dynamicRegistration: DynamicRegistrationSchema.default(dynamicRegistrationDefault),
});

/** The defaults, for callers that make the whole `clients:` block optional. */
export const clientsConfigDefault = {
  metadataDocuments: metadataDocumentsDefault,
  dynamicRegistration: dynamicRegistrationDefault,
};

export type ClientsConfigInput = z.input<typeof ClientsConfigSchema>;
export type ClientsConfig = z.output<typeof ClientsConfigSchema>;
export type MetadataDocumentsConfig = ClientsConfig['metadataDocuments'];
export type DynamicRegistrationConfig = ClientsConfig['dynamicRegistration'];
