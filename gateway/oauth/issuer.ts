/**
 * The authorization server's issuer identifier (RFC 8414 `issuer`, the `iss` of its tokens and of its
 * authorization responses, RFC 9207) and the addresses of its endpoints.
 *
 * Default: the public URL of the listener that serves it. Like the protected resource's identifier
 * (gateway/public-origin.ts), on a loopback listener it follows the loopback name the client used, so a
 * client given `http://localhost:3001/mcp` sees issuer `http://localhost:3001` and one given
 * `http://127.0.0.1:3001/mcp` sees `http://127.0.0.1:3001`: clients compare the issuer with the address
 * they fetched its metadata from, exactly. An explicit `issuer` is used as written.
 */
import { isLoopbackUrl, loopbackSpellings } from '../public-origin.ts';

const LOOPBACK_NAME = /^(localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?$/i;

export interface Issuer {
  /** The configured (or default) identifier, when nothing is known of the client. */
  readonly canonical: string;
  /** Every identifier it may answer as (the loopback spellings, or just the one). */
  readonly all: readonly string[];
  forHost(host: string | undefined): string;
  /** An endpoint's URL under the issuer a client knows, e.g. `endpoint(iss, '/oauth/token')`. */
  endpoint(issuer: string, path: string): string;
  /** The issuer's path (`''` for an origin): metadata lives at `/.well-known/oauth-authorization-server<path>`. */
  readonly path: string;
}

export function makeIssuer(configured: string | undefined, listenerPublicUrl: string): Issuer {
  const explicit = configured !== undefined;
  const canonical = (configured ?? listenerPublicUrl).replace(/\/+$/, '');
  const url = new URL(canonical);
  const follows = !explicit && isLoopbackUrl(url);
  return {
    canonical,
    all: follows ? loopbackSpellings(canonical) : [canonical],
    // The name only, whatever the port: a client of a resource on another loopback listener (:3003)
    // reaches this server (:3001) under the same name it used there.
    forHost(host) {
      const m = follows && host !== undefined ? LOOPBACK_NAME.exec(host) : null;
      return m ? `${url.protocol}//${m[1].toLowerCase()}${url.port ? `:${url.port}` : ''}` : canonical;
    },
    endpoint: (issuer, path) => new URL(path, issuer).href,
    path: url.pathname === '/' ? '' : url.pathname,
  };
}
