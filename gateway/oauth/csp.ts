/**
 * The Content-Security-Policy of the sign-in pages (login, consent, error).
 *
 * The pages have no scripts, images or fonts and one inline <style>, so almost everything is 'none'.
 * The one directive that depends on the request is `form-action`: Chromium checks it not only against
 * the form's own target but against every redirect that follows the POST. The consent POST is answered
 * with a 303 to the client's redirect URI, so the consent page must allow that URI too, or Chromium
 * blocks the redirect and the client never gets its code. That is a real problem for desktop clients
 * whose redirect URI has a private-use scheme (Cursor: `cursor://anysphere.cursor-retrieval/…`), which
 * no fixed `https: http:` list covers.
 *
 * So each page allows `'self'` and, on a page whose form can end in a redirect to a client, exactly
 * that client's redirect target: the origin for http(s), the scheme for a private-use scheme (a
 * scheme-source is the only way CSP can name it). Nothing else may receive a form from these pages.
 */

const BASE = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'";

/** A CSP host-source we can write safely: a DNS name or IPv4 address, with an optional port. */
const HOST_SOURCE = /^https?:\/\/[a-z0-9.-]+(:\d{1,5})?$/;
/** RFC 3986 scheme, as URL.protocol spells it (lower case, with the colon). */
const SCHEME_SOURCE = /^[a-z][a-z0-9+.-]*:$/;

/**
 * The CSP source that lets a form's redirect reach `redirectUri`, or undefined when there is none that
 * can be written safely (the URI was validated at registration; this also keeps the header well formed
 * whatever the URL parser accepts in a host, such as `;`).
 */
export function redirectSource(redirectUri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(redirectUri);
  } catch {
    return undefined;
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') {
    if (HOST_SOURCE.test(url.origin)) return url.origin;
    // Chromium does not accept an IPv6 literal in a host-source (it ignores the source as invalid), so a
    // loopback `http://[::1]:port` client is allowed by scheme: the redirect target is still only the
    // URI the client registered, checked before the page was shown.
    if (url.hostname.startsWith('[')) return url.protocol;
    return undefined;
  }
  return SCHEME_SOURCE.test(url.protocol) ? url.protocol : undefined;
}

/** The policy of a sign-in page; `redirectUri` when its form may be answered with a redirect there. */
export function pagePolicy(redirectUri?: string): string {
  const extra = redirectUri === undefined ? undefined : redirectSource(redirectUri);
  return `${BASE}; form-action 'self'${extra ? ` ${extra}` : ''}`;
}
