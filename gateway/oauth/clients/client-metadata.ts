/**
 * Client metadata (RFC 7591 §2), read the same way whether it came in a registration request or in a
 * Client ID Metadata Document. Fields this server does not use are ignored, as RFC 7591 requires
 * (`logo_uri`, `contacts`, `software_id`, `application_type`…); fields it uses are checked for type,
 * length and meaning, and a problem names the field so the client's developer can fix it.
 */
import { redirectUriProblem } from './redirect-uri.ts';

export type AuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post';

/** What the token endpoint accepts (for authorization-server metadata). */
export const TOKEN_ENDPOINT_AUTH_METHODS: readonly AuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post'];
export const GRANT_TYPES = ['authorization_code', 'refresh_token'] as const;
export const RESPONSE_TYPES = ['code'] as const;

export interface ClientMetadata {
  redirectUris: string[];
  tokenEndpointAuthMethod: AuthMethod;
  grantTypes: string[];
  responseTypes: string[];
  clientName?: string;
  clientUri?: string;
  scope?: string;
}

/** A refusal: which field, and why (the description starts with the field name). */
export class MetadataProblem extends Error {
  readonly field: string;
  constructor(field: string, description: string) {
    super(`${field} ${description}`);
    this.field = field;
  }
}

export interface ReadOptions {
  maxRedirectUris: number;
  /** Secret-based methods may be chosen (DCR); a metadata document is public, so it may not hold one. */
  allowSecretMethods: boolean;
}

const MAX_NAME = 200;
const MAX_URI = 2_000;
const MAX_SCOPE = 1_000;
/** RFC 6749 §3.3 scope-token characters, space-separated. */
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalString(doc: Record<string, unknown>, field: string, max: number): string | undefined {
  const v = doc[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new MetadataProblem(field, 'must be a string');
  if (v.length > max) throw new MetadataProblem(field, `is longer than ${max} characters`);
  return v;
}

/**
 * The values of a list field this server supports. Others are dropped rather than refused (RFC 7591
 * §3.2.1 lets a server replace requested values, and the response says what was registered): VS Code,
 * for one, asks for the device-code grant alongside authorization_code.
 */
function supportedSubset(doc: Record<string, unknown>, field: string, fallback: readonly string[], allowed: readonly string[]): string[] {
  const v = doc[field];
  if (v === undefined || v === null) return [...fallback];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new MetadataProblem(field, 'must be an array of strings');
  return [...new Set(v as string[])].filter((x) => allowed.includes(x));
}

export function readClientMetadata(doc: unknown, opts: ReadOptions): ClientMetadata {
  if (!isRecord(doc)) throw new MetadataProblem('metadata', 'must be a JSON object');

  const uris = doc.redirect_uris;
  if (!Array.isArray(uris) || uris.length === 0) throw new MetadataProblem('redirect_uris', 'is required: a non-empty array of absolute URIs');
  if (uris.length > opts.maxRedirectUris) throw new MetadataProblem('redirect_uris', `has ${uris.length} entries; at most ${opts.maxRedirectUris} are accepted`);
  for (const uri of uris) {
    if (typeof uri !== 'string') throw new MetadataProblem('redirect_uris', 'must contain only strings');
    const problem = redirectUriProblem(uri);
    if (problem) throw new MetadataProblem('redirect_uris', `entry ${JSON.stringify(uri.slice(0, 200))} ${problem}`);
  }

  const method = doc.token_endpoint_auth_method ?? 'none';
  if (typeof method !== 'string') throw new MetadataProblem('token_endpoint_auth_method', 'must be a string');
  const secretMethod = method === 'client_secret_basic' || method === 'client_secret_post';
  if (secretMethod && !opts.allowSecretMethods) {
    throw new MetadataProblem('token_endpoint_auth_method', `is ${method}, but a client metadata document is public and cannot come with a shared secret; use none (PKCE protects the code)`);
  }
  if (!secretMethod && method !== 'none') {
    const supported = opts.allowSecretMethods ? TOKEN_ENDPOINT_AUTH_METHODS.join(', ') : 'none';
    throw new MetadataProblem('token_endpoint_auth_method', `${JSON.stringify(method.slice(0, 60))} is not supported by this server; use ${supported}`);
  }

  const grantTypes = supportedSubset(doc, 'grant_types', ['authorization_code'], GRANT_TYPES);
  if (!grantTypes.includes('authorization_code')) {
    throw new MetadataProblem('grant_types', 'must include authorization_code, the only grant this server issues tokens by (refresh_token may come with it)');
  }
  const responseTypes = supportedSubset(doc, 'response_types', ['code'], RESPONSE_TYPES);
  if (!responseTypes.includes('code')) throw new MetadataProblem('response_types', 'must include code, the only response type this server supports');

  const scope = optionalString(doc, 'scope', MAX_SCOPE);
  if (scope !== undefined && scope !== '' && !SCOPE.test(scope)) throw new MetadataProblem('scope', 'must be scope names separated by single spaces');

  const clientUri = optionalString(doc, 'client_uri', MAX_URI);
  const clientName = optionalString(doc, 'client_name', MAX_NAME);
  return {
    redirectUris: [...new Set(uris as string[])],
    tokenEndpointAuthMethod: method as AuthMethod,
    grantTypes,
    responseTypes,
    ...(clientName?.trim() ? { clientName: clientName.trim() } : {}),
    // Shown as a link on the consent page: only web addresses, never javascript: and friends.
    ...(clientUri && /^https?:\/\//i.test(clientUri) && URL.canParse(clientUri) ? { clientUri } : {}),
    ...(scope ? { scope } : {}),
  };
}
