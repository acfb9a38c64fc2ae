/**
 * The gateway's own OAuth 2.1 authorization server (off by default; the `authorization:` section of
 * gateway.yaml): the shapes its parts agree on. The endpoints (metadata, authorize, token, revoke,
 * register) live in gateway/oauth/*.ts; who may be a client in gateway/oauth/clients/; who may sign in
 * in gateway/oauth/accounts/; the pages a person sees in gateway/oauth/pages/.
 *
 * Everything here answers OAuth errors (RFC 6749 §5.2), never JSON-RPC: these endpoints are read by
 * OAuth client libraries and browsers, not by MCP clients.
 */

/** An OAuth error response: `{ error, error_description }` with its HTTP status (RFC 6749 §5.2). */
export class OAuthError extends Error {
  readonly error: string;
  readonly status: number;
  constructor(error: string, description: string, status = 400) {
    super(description);
    this.error = error;
    this.status = status;
  }

  toJSON(): { error: string; error_description: string } {
    return { error: this.error, error_description: this.message };
  }
}

/** A client the authorization server knows, however it got to know it. */
export interface ClientInfo {
  /** The `client_id`: an https URL for a Client ID Metadata Document, or an id this server issued (DCR). */
  clientId: string;
  /** How the server learned of it. */
  kind: 'metadata-document' | 'dynamic';
  /** Shown on the consent page. Untrusted text: pages escape it. */
  clientName?: string;
  clientUri?: string;
  /** Registered redirect URIs, matched exactly (loopback ports excepted: redirectUriMatches). */
  redirectUris: string[];
  /** `none` for public clients (PKCE only); a DCR client may be confidential. */
  tokenEndpointAuthMethod: 'none' | 'client_secret_basic' | 'client_secret_post';
  /** For confidential DCR clients: a hash of the secret (never the secret). */
  clientSecretHash?: string;
  grantTypes: string[];
  /** Space-separated scopes it registered for, when it said. */
  scope?: string;
}

export interface ClientRegistry {
  /**
   * The client behind a `client_id`: an https URL is a Client ID Metadata Document, fetched (SSRF-guarded,
   * size- and time-limited, cached); anything else must be a client registered here. Throws OAuthError
   * (`invalid_client`, or `invalid_request` for a document that is unusable, with a description that says why).
   */
  resolve(clientId: string): Promise<ClientInfo>;
  /**
   * RFC 7591 dynamic registration: validates the metadata, stores the client, and returns it with the
   * response body to send (201), which includes `client_secret` once for confidential clients.
   * Throws OAuthError (`invalid_redirect_uri`, `invalid_client_metadata`).
   */
  register(metadata: unknown): Promise<{ client: ClientInfo; response: Record<string, unknown> }>;
  /** Checks a confidential client's secret at the token endpoint (constant time). */
  verifySecret(client: ClientInfo, secret: string): Promise<boolean>;
  close?(): Promise<void>;
}

/** Who signed in, as the account source says. The tenant always comes from here, never from the client. */
export interface Account {
  /** `sub` of the tokens issued to this person. */
  subject: string;
  tenant: string;
  /** Scopes this account may be granted; a request gets the intersection with what it asked for. */
  scopes: string[];
  /** Shown on pages. */
  displayName?: string;
  /** `users-file` or `oidc:<provider name>`. */
  source: string;
}

/** Accounts with passwords (the users file). */
export interface PasswordAccounts {
  /** The account when the password is right; undefined otherwise (same time either way). */
  verify(username: string, password: string): Promise<Account | undefined>;
  close?(): Promise<void>;
}

/** Limits password guessing: per account and per client address. */
export interface LoginGuard {
  /** Whether an attempt may be made now; when not, how long until it may. */
  allow(username: string, address: string): Promise<{ ok: true } | { ok: false; retryAfterSeconds: number }>;
  failed(username: string, address: string): Promise<void>;
  succeeded(username: string, address: string): Promise<void>;
}

/** Sign-in delegated to an upstream OpenID Connect provider (Keycloak, Auth0, Entra, Google…). */
export interface OidcLogin {
  /** Shown on the login button ("Sign in with …"). */
  readonly label: string;
  /**
   * Where to send the browser. `pendingId` identifies the authorization request waiting for this
   * sign-in; it comes back from `finish`. `callbackUrl` is this gateway's callback address.
   */
  start(pendingId: string, callbackUrl: string): Promise<string>;
  /** Completes the sign-in from the provider's redirect to `callbackUrl`. Throws OAuthError (`access_denied`…). */
  finish(callback: URL, callbackUrl: string): Promise<{ pendingId: string; account: Account }>;
  close?(): Promise<void>;
}

/**
 * An error from `OidcLogin.finish` once the callback's `state` was recognised: `pendingId` is the
 * authorization request it belongs to, so the callback route can send the error to that client's
 * redirect_uri (RFC 6749 §4.1.2.1: `access_denied` when the person refused or has no tenant) instead of
 * leaving the browser on an error page. Errors before that (no state, unknown, expired or replayed) are
 * plain OAuthErrors: there is no client to tell.
 */
export class PendingSignInError extends OAuthError {
  readonly pendingId: string;
  constructor(pendingId: string, error: string, description: string, status = 400) {
    super(error, description, status);
    this.pendingId = pendingId;
  }
}

/**
 * Short-lived server state (authorization requests waiting for sign-in, codes, refresh-token families,
 * registered clients): memory for one replica, Redis for several.
 */
export interface OAuthStore {
  put(kind: string, key: string, value: unknown, ttlMs: number): Promise<void>;
  get<T>(kind: string, key: string): Promise<T | undefined>;
  /** Reads and deletes at once: a second `take` of the same key gets undefined (single-use codes). */
  take<T>(kind: string, key: string): Promise<T | undefined>;
  delete(kind: string, key: string): Promise<void>;
  close?(): Promise<void>;
}
