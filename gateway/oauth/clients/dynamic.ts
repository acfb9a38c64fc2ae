/**
 * Dynamic Client Registration (RFC 7591). Deprecated by the 2026-07-28 MCP spec in favour of metadata
 * documents, but it is how Claude, VS Code, Cursor and the MCP SDK's own client register today.
 *
 * The server issues a random `client_id` and keeps the client in the OAuthStore (kind `client`), so
 * replicas sharing Redis know every client. A client asking for `client_secret_basic`/`_post` gets a
 * random secret, returned once; only its SHA-256 is stored. (A slow password hash is not needed: the
 * secret is 256 random bits, so there is nothing to guess, only a leaked store to be useless.)
 *
 * One deliberate difference from RFC 7591 §2: an omitted `token_endpoint_auth_method` means `none`,
 * not `client_secret_basic`. MCP clients are desktop and browser apps that cannot keep a secret, PKCE
 * protects their codes, and a secret nobody asked for would only end up in a config file.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { OAuthError, type ClientInfo, type OAuthStore } from '../contracts.ts';
import type { DynamicRegistrationConfig } from './config.ts';
import { MetadataProblem, readClientMetadata } from './client-metadata.ts';

export const CLIENT_KIND = 'client';
/** Prefix of issued ids: tells them apart from metadata URLs at a glance, and in logs. */
const ID_PREFIX = 'mcpgw-';

interface StoredClient {
  client: ClientInfo;
  issuedAt: number;
  /** When the store entry's lifetime was last extended (so a used client is not forgotten). */
  renewedAt: number;
}

function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

export class DynamicClients {
  private readonly config: DynamicRegistrationConfig;
  private readonly store: OAuthStore;

  constructor(config: DynamicRegistrationConfig, store: OAuthStore) {
    this.config = config;
    this.store = store;
  }

  /** True for ids this server may have issued (what `resolve` looks up in the store). */
  static isIssuedId(clientId: string): boolean {
    return clientId.startsWith(ID_PREFIX) && /^[A-Za-z0-9_-]{1,100}$/.test(clientId);
  }

  async register(metadata: unknown): Promise<{ client: ClientInfo; response: Record<string, unknown> }> {
    if (!this.config.enabled) {
      throw new OAuthError('invalid_request', 'dynamic client registration is turned off on this server (dynamicRegistration.enabled); use a client ID metadata document', 404);
    }
    // The caller bounds the request body; this bounds what a caller that parsed it anyway hands over.
    let size: number;
    try {
      size = Buffer.byteLength(JSON.stringify(metadata) ?? '');
    } catch {
      throw new OAuthError('invalid_client_metadata', 'the registration request is not JSON');
    }
    if (size > this.config.maxBytes) {
      throw new OAuthError('invalid_client_metadata', `the registration request is ${size} bytes; at most ${this.config.maxBytes} are accepted`);
    }
    if (typeof metadata === 'object' && metadata !== null && 'software_statement' in metadata) {
      // RFC 7591 §3.2.2: a statement we cannot verify must not be silently trusted.
      throw new OAuthError('invalid_software_statement', 'software statements are not supported by this server; register without software_statement');
    }
    let meta;
    try {
      meta = readClientMetadata(metadata, { maxRedirectUris: this.config.maxRedirectUris, allowSecretMethods: true });
    } catch (err) {
      if (!(err instanceof MetadataProblem)) throw err;
      throw new OAuthError(err.field === 'redirect_uris' ? 'invalid_redirect_uri' : 'invalid_client_metadata', err.message);
    }

    const issuedAt = Date.now();
    const clientId = ID_PREFIX + randomBytes(18).toString('base64url');
    const confidential = meta.tokenEndpointAuthMethod !== 'none';
    const secret = confidential ? randomBytes(32).toString('base64url') : undefined;
    const client: ClientInfo = {
      clientId,
      kind: 'dynamic',
      redirectUris: meta.redirectUris,
      tokenEndpointAuthMethod: meta.tokenEndpointAuthMethod,
      grantTypes: meta.grantTypes,
      ...(secret ? { clientSecretHash: hashSecret(secret).toString('base64url') } : {}),
      ...(meta.clientName ? { clientName: meta.clientName } : {}),
      ...(meta.clientUri ? { clientUri: meta.clientUri } : {}),
      ...(meta.scope ? { scope: meta.scope } : {}),
    };
    const stored: StoredClient = { client, issuedAt, renewedAt: issuedAt };
    await this.store.put(CLIENT_KIND, clientId, stored, this.config.clientTtl);

    // RFC 7591 §3.2.1: the id, when it was issued, the secret (this once), and the metadata as registered.
    const response: Record<string, unknown> = {
      client_id: clientId,
      client_id_issued_at: Math.floor(issuedAt / 1000),
      ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
      redirect_uris: meta.redirectUris,
      token_endpoint_auth_method: meta.tokenEndpointAuthMethod,
      grant_types: meta.grantTypes,
      response_types: meta.responseTypes,
      ...(meta.clientName ? { client_name: meta.clientName } : {}),
      ...(meta.clientUri ? { client_uri: meta.clientUri } : {}),
      ...(meta.scope ? { scope: meta.scope } : {}),
    };
    return { client, response };
  }

  async resolve(clientId: string): Promise<ClientInfo> {
    const unknown = () => new OAuthError(
      'invalid_client',
      `unknown client_id ${JSON.stringify(clientId.slice(0, 100))}: it was not registered here, or it went unused for longer than the server keeps clients; register again`,
    );
    if (!DynamicClients.isIssuedId(clientId)) throw unknown();
    const stored = await this.store.get<StoredClient>(CLIENT_KIND, clientId);
    if (!stored) throw unknown();
    // Extend the lifetime of a client in use, at most about once a day, so active clients stay known
    // without a store write on every request.
    const now = Date.now();
    if (now - stored.renewedAt > Math.min(this.config.clientTtl / 2, 86_400_000)) {
      await this.store.put(CLIENT_KIND, clientId, { ...stored, renewedAt: now }, this.config.clientTtl);
    }
    return stored.client;
  }

  /** Constant time in the secret: both sides are hashed to 32 bytes before comparing. */
  static verifySecret(client: ClientInfo, secret: string): boolean {
    if (client.tokenEndpointAuthMethod === 'none' || !client.clientSecretHash) return false;
    const expected = Buffer.from(client.clientSecretHash, 'base64url');
    const given = hashSecret(secret);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }
}
