/**
 * RFC 8414 authorization server metadata: what an MCP client reads after the protected resource's
 * metadata named this server, to find its endpoints and what it supports.
 */
import { TOKEN_ENDPOINT_AUTH_METHODS } from './clients/client-metadata.ts';
import type { Issuer } from './issuer.ts';

export const PATHS = {
  authorize: '/oauth/authorize',
  login: '/oauth/login',
  consent: '/oauth/consent',
  oidcStart: '/oauth/oidc',
  callback: '/oauth/callback',
  token: '/oauth/token',
  revoke: '/oauth/revoke',
  register: '/oauth/register',
  jwks: '/oauth/jwks',
} as const;

export const METADATA_PATH = '/.well-known/oauth-authorization-server';

export interface MetadataOptions {
  issuer: Issuer;
  scopes: readonly string[];
  registration: boolean;
  metadataDocuments: boolean;
}

export function authorizationServerMetadata(issuer: string, opts: MetadataOptions): Record<string, unknown> {
  const at = (p: string) => opts.issuer.endpoint(issuer, p);
  const doc: Record<string, unknown> = {
    issuer,
    authorization_endpoint: at(PATHS.authorize),
    token_endpoint: at(PATHS.token),
    revocation_endpoint: at(PATHS.revoke),
    jwks_uri: at(PATHS.jwks),
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    // PKCE with S256 only: `plain` would let whoever sees the authorization request redeem its code.
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: [...TOKEN_ENDPOINT_AUTH_METHODS],
    revocation_endpoint_auth_methods_supported: [...TOKEN_ENDPOINT_AUTH_METHODS],
    // RFC 9207: the authorization response carries `iss`, so a client can tell which server answered.
    authorization_response_iss_parameter_supported: true,
    client_id_metadata_document_supported: opts.metadataDocuments,
  };
  if (opts.registration) doc.registration_endpoint = at(PATHS.register);
  if (opts.scopes.length) doc.scopes_supported = [...opts.scopes];
  return doc;
}
