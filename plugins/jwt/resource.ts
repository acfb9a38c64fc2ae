/**
 * A route's resource identifier (RFC 9728 `resource`, the audience tokens are bound to) and the origin
 * its discovery documents are published under, as seen by the client asking.
 *
 * Why they may follow the request's Host (gateway/public-origin.ts): a listener bound to 127.0.0.1
 * without `publicUrl` is reached as `http://localhost:3001/mcp` by some clients and `http://127.0.0.1:3001/mcp` by others (the README
 * says localhost, the bind says 127.0.0.1, both work). MCP clients compare the metadata's `resource`
 * with the URL they were given, exactly, and stop with "Protected resource … does not match expected …"
 * before they ever show the real problem (usually: no token). Renaming the default public URL to
 * `localhost` would only move that failure to the people who type 127.0.0.1. So when the listener's
 * public URL is a loopback URL, the advertised identifier uses the loopback name the client sent in
 * `Host`, and the default audience accepts every loopback spelling of it.
 *
 * Only the three loopback names are followed, and only on the public URL's own port: any other Host is
 * the client's choice, not the operator's, and a discovery document must not advertise names nobody
 * configured. A `publicUrl` that is not loopback, or an explicit `resource`, is used as written. Behind a
 * port mapping (`-p 8080:3001`) the client's port differs: set `publicUrl` there.
 */
import type { RouteInfo } from '../../gateway/contract.ts';
import { loopbackSpellings, publicOriginFor } from '../../gateway/public-origin.ts';

export { publicOriginFor };

function routeSuffix(route: RouteInfo): string {
  return route.path === '/' ? '' : route.path.replace(/\/+$/, '');
}

export interface RouteResource {
  /** The identifier when nothing is known of the client: `resource`, or the public URL plus the route path. */
  readonly canonical: string;
  /** The identifier for a client that sent this `Host`. */
  forHost(host: string | undefined): string;
  /** Every identifier this route can advertise: the default audience. */
  readonly all: readonly string[];
}

export function routeResource(route: RouteInfo, configured?: string): RouteResource {
  if (configured !== undefined) return { canonical: configured, forHost: () => configured, all: [configured] };
  const suffix = routeSuffix(route);
  // The public URL first (the canonical identifier), then its other loopback spellings, if loopback.
  const all = loopbackSpellings(route.listener.publicUrl).map((origin) => origin + suffix);
  return {
    canonical: all[0],
    forHost: (host) => publicOriginFor(route.listener, host) + suffix,
    all,
  };
}
