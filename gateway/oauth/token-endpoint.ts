/**
 * The endpoints a client calls directly (no browser): token (OAuth 2.1 §3.2: authorization_code and
 * refresh_token grants), revocation (RFC 7009) and dynamic registration (RFC 7591). Every error is an
 * RFC 6749 §5.2 JSON body with `cache-control: no-store`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { jwtVerify } from 'jose';
import type { Logger } from 'pino';
import { OAuthError, type ClientInfo, type ClientRegistry } from './contracts.ts';
import type { Grants } from './grants.ts';
import { NO_STORE, openCors, readBody, readForm, sendJson } from './http.ts';
import type { SigningKeys } from './signing.ts';

export interface TokenEndpointDeps {
  clients: ClientRegistry;
  grants: Grants;
  keys: SigningKeys;
  issuers: readonly string[];
  /** Resolves once other processes can see the revocation (grants.ts Revoker). */
  revokeAccessToken(jti: string, untilMs: number, why: string): Promise<void>;
  registration: boolean;
  log: Logger;
}

/** RFC 7636 §4.6: BASE64URL(SHA256(verifier)) must equal the challenge. */
function pkceMatches(verifier: string, challenge: string): boolean {
  const computed = createHash('sha256').update(verifier).digest('base64url');
  return computed.length === challenge.length && timingSafeEqual(Buffer.from(computed), Buffer.from(challenge));
}

const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;

/** A form-urlencoded value; undefined for a malformed %-escape (decodeURIComponent's URIError). */
function formDecode(value: string): string | undefined {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

export class TokenEndpoint {
  readonly #d: TokenEndpointDeps;
  constructor(deps: TokenEndpointDeps) {
    this.#d = deps;
  }

  async token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const client = await this.#authenticate(req, form);
    const grantType = form.get('grant_type');
    let body;
    if (grantType === 'authorization_code') {
      const code = form.get('code');
      const verifier = form.get('code_verifier');
      const redirectUri = form.get('redirect_uri');
      if (!code) throw new OAuthError('invalid_request', 'code is missing.');
      if (!verifier) throw new OAuthError('invalid_request', 'code_verifier is missing: PKCE is required.');
      if (!VERIFIER.test(verifier)) throw new OAuthError('invalid_grant', 'code_verifier is not a valid PKCE verifier.');
      const resource = form.get('resource');
      body = await this.#d.grants.redeemCode(code, (grant) => {
        if (grant.clientId !== client.clientId) throw new OAuthError('invalid_grant', 'The code was issued to another client.');
        if (redirectUri !== grant.redirectUri) throw new OAuthError('invalid_grant', 'redirect_uri differs from the authorization request\'s.');
        if (!pkceMatches(verifier, grant.codeChallenge)) throw new OAuthError('invalid_grant', 'code_verifier does not match the code_challenge.');
        if (resource !== undefined && resource !== grant.resource) throw new OAuthError('invalid_target', `The code was issued for ${grant.resource}.`);
      });
    } else if (grantType === 'refresh_token') {
      const refreshToken = form.get('refresh_token');
      if (!refreshToken) throw new OAuthError('invalid_request', 'refresh_token is missing.');
      if (!client.grantTypes.includes('refresh_token')) throw new OAuthError('unauthorized_client', 'This client did not register for refresh tokens.');
      body = await this.#d.grants.refresh(refreshToken, client.clientId, { resource: form.get('resource'), scope: form.get('scope') });
    } else {
      throw new OAuthError('unsupported_grant_type', grantType ? `grant_type ${grantType} is not supported (authorization_code, refresh_token).` : 'grant_type is missing.');
    }
    sendJson(res, 200, body, { ...NO_STORE, ...openCors(req) });
  }

  async revoke(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = await readForm(req);
    const client = await this.#authenticate(req, form);
    const token = form.get('token');
    if (!token) throw new OAuthError('invalid_request', 'token is missing.');
    // RFC 7009 §2.2: 200 whether or not the token was valid, so a caller learns nothing about it; and
    // only once the revocation is recorded, so the token is dead everywhere when the client hears so.
    if (!(await this.#d.grants.revokeRefreshToken(token, client.clientId))) await this.#revokeAccessToken(token, client.clientId);
    sendJson(res, 200, {}, { ...NO_STORE, ...openCors(req) });
  }

  async register(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#d.registration) throw new OAuthError('invalid_request', 'Dynamic client registration is off on this server; use a Client ID Metadata Document.', 404);
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json') {
      req.resume();
      throw new OAuthError('invalid_client_metadata', 'Send the client metadata as application/json.');
    }
    let metadata: unknown;
    try {
      metadata = JSON.parse(await readBody(req, 64_000));
    } catch (err) {
      if (err instanceof OAuthError) throw err;
      throw new OAuthError('invalid_client_metadata', 'The body is not valid JSON.');
    }
    const { client, response } = await this.#d.clients.register(metadata);
    this.#d.log.info({ client: client.clientId, name: client.clientName, redirectUris: client.redirectUris }, 'client registered');
    sendJson(res, 201, response, { ...NO_STORE, ...openCors(req) });
  }

  /**
   * The client of a token or revocation request: `client_secret_basic` (Authorization: Basic),
   * `client_secret_post`, or `none` (public clients: just `client_id`, PKCE protects the code). A
   * confidential client must send its secret one of the two ways; a failure is 401 invalid_client.
   */
  async #authenticate(req: IncomingMessage, form: Map<string, string>): Promise<ClientInfo> {
    let clientId = form.get('client_id');
    let secret = form.get('client_secret');
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
      if (!m) throw new OAuthError('invalid_client', 'Only HTTP Basic client authentication is accepted in the Authorization header.', 401);
      const decoded = Buffer.from(m[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0 || secret !== undefined) throw new OAuthError('invalid_client', 'Malformed client credentials.', 401);
      // RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
      const basicId = formDecode(decoded.slice(0, colon));
      secret = formDecode(decoded.slice(colon + 1));
      if (basicId === undefined || secret === undefined) throw new OAuthError('invalid_client', 'Malformed client credentials: bad percent-encoding.', 401);
      if (clientId !== undefined && clientId !== basicId) throw new OAuthError('invalid_client', 'client_id differs from the Basic credentials.', 401);
      clientId = basicId;
    }
    if (!clientId) throw new OAuthError('invalid_client', 'client_id is missing.', 401);
    let client: ClientInfo;
    try {
      client = await this.#d.clients.resolve(clientId);
    } catch (err) {
      if (err instanceof OAuthError) throw new OAuthError('invalid_client', err.message, 401);
      throw err;
    }
    if (client.tokenEndpointAuthMethod === 'none') {
      if (secret !== undefined) throw new OAuthError('invalid_client', 'This client is public: it has no secret to send.', 401);
      return client;
    }
    if (secret === undefined || !(await this.#d.clients.verifySecret(client, secret))) {
      throw new OAuthError('invalid_client', 'Client authentication failed.', 401);
    }
    return client;
  }

  /** An access token (one of ours, issued to this client) is revoked by its `jti`. */
  async #revokeAccessToken(token: string, clientId: string): Promise<void> {
    try {
      const { payload } = await jwtVerify(token, this.#d.keys.verificationKey, {
        issuer: [...this.#d.issuers], algorithms: this.#d.keys.algorithms, requiredClaims: ['jti', 'exp'],
      });
      if (payload.client_id !== clientId) return;
      await this.#d.revokeAccessToken(payload.jti!, payload.exp! * 1000, 'revoked by its client');
    } catch {
      // Not ours, expired or malformed: nothing to revoke (RFC 7009 still answers 200).
    }
  }
}
