/**
 * Redirect URIs: which ones a client may register, and whether the one in an authorization request is
 * one it registered.
 *
 * Matching is exact string comparison (OAuth 2.1 §2.3.1, MCP "Open Redirection"): no prefix matching,
 * no normalisation, so `https://app/cb` does not match `https://app/cb/` or `https://APP/cb`. The one
 * exception is RFC 8252 §7.3: a native app listening on a loopback interface gets a port from the OS at
 * run time, so for `http://127.0.0.1`, `http://[::1]` and `http://localhost` (the MCP spec allows
 * `localhost` redirect URIs, and clients register it) the port may differ; scheme, host spelling, path
 * and query must still be the same.
 */

/** Hosts of loopback redirect URIs, as URL.hostname spells them. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/**
 * Schemes that can never be a redirect target: they run code, read local files or go nowhere. Any other
 * scheme is a private-use scheme (RFC 8252 §7.1: `com.example.app:/cb`, `cursor://…`, `vscode://…`)
 * handed to the app that claimed it.
 */
const FORBIDDEN_SCHEMES = new Set([
  'javascript:', 'data:', 'vbscript:', 'file:', 'blob:', 'about:', 'filesystem:', 'view-source:', 'ws:', 'wss:', 'ftp:',
]);

/** Longest redirect URI accepted. */
export const MAX_REDIRECT_URI_LENGTH = 2_000;

export function isLoopbackRedirect(url: URL): boolean {
  return url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
}

/**
 * Why a redirect URI may not be registered, or undefined when it may: absolute, no fragment (RFC 6749
 * §3.1.2), no user name or password, `https:`, loopback `http:`, or a private-use scheme.
 */
export function redirectUriProblem(uri: string): string | undefined {
  if (uri.length > MAX_REDIRECT_URI_LENGTH) return `is longer than ${MAX_REDIRECT_URI_LENGTH} characters`;
  // A control character or space would be "fixed" by the URL parser, and the fixed string is not what the
  // client will send back; refuse rather than register something that never matches.
  if (/[\u0000-\u0020\u007f]/.test(uri)) return 'contains spaces or control characters';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'is not an absolute URI';
  }
  if (uri.includes('#')) return 'has a fragment (#…), which redirect URIs may not have';
  if (FORBIDDEN_SCHEMES.has(url.protocol)) return `uses the ${url.protocol} scheme, which cannot be a redirect target`;
  if (url.username || url.password) return 'contains a user name or password';
  if (url.protocol === 'http:' && !isLoopbackRedirect(url)) {
    return 'uses http: on a host that is not loopback; use https:, or http://127.0.0.1, http://[::1] or http://localhost for a native app';
  }
  if ((url.protocol === 'https:' || url.protocol === 'http:') && !url.hostname) return 'has no host';
  return undefined;
}

/**
 * A loopback `http:` URI with its port removed, compared as text so that everything but the port is
 * matched exactly (no parser normalisation of paths or case); undefined for any other URI. A missing
 * path counts as `/` (VS Code registers `http://127.0.0.1:33418`).
 */
const LOOPBACK_PREFIX = /^http:\/\/(127\.0\.0\.1|\[::1\]|localhost)(?::\d{1,5})?(?=[/?]|$)/;
function withoutLoopbackPort(uri: string): string | undefined {
  const m = LOOPBACK_PREFIX.exec(uri);
  if (!m || uri.includes('#') || !URL.canParse(uri)) return undefined;
  const rest = uri.slice(m[0].length);
  return `http://${m[1]}${rest.startsWith('/') ? rest : `/${rest}`}`;
}

/**
 * Whether `requested` (from an authorization or token request) is one of `registered`: exact string
 * match, or, for loopback `http:` URIs, a match of everything but the port.
 */
export function redirectUriMatches(registered: readonly string[], requested: string): boolean {
  if (registered.includes(requested)) return true;
  const wanted = withoutLoopbackPort(requested);
  if (wanted === undefined) return false;
  return registered.some((candidate) => withoutLoopbackPort(candidate) === wanted);
}
