/**
 * What an MCP client reads to learn how to authenticate: RFC 9728 protected-resource metadata, at the
 * path-inserted address of the route (clients try it first) and at the bare well-known address, and the
 * development issuer's public keys.
 *
 * Metadata is served only when the route names at least one authorization server: the MCP spec requires
 * one, and a document without it sends clients into an OAuth discovery that can only fail, so they
 * report that failure instead of the real one (no token, or a bad one). Without authorization servers
 * the route's metadata address answers 404 with how to get a token, and challenges point nowhere.
 *
 * `bearer_methods_supported` is always `["header"]`: the `?token=` listener is a deliberate exception
 * for header-less clients and must not invite anyone else to put tokens in URLs.
 */
import type { IncomingMessage } from 'node:http';
import type { RouteInfo, ServedResponse } from '../../gateway/contract.ts';
import { METADATA_PREFIX, routeMetadataPath } from './challenge.ts';
import { readDevJwks } from './dev-keys.ts';
import type { RouteResource } from './resource.ts';

export interface MetadataOptions {
  /** The resource identifier (see resource.ts: it may follow the client's loopback Host). */
  resource: RouteResource;
  authorizationServers: readonly string[];
  /**
   * The gateway's own authorization server, when the route trusts it: named first, as the client that
   * asks knows it (on a loopback listener, the loopback name it used).
   */
  gatewayIssuer?: (host: string | undefined) => string;
  scopesSupported: readonly string[];
  /** Folder of the development issuer's keys, to serve `/.well-known/jwks.json`. */
  devDir?: string;
  /** How to get a token, for the 404 a route without authorization servers answers. */
  tokenHint?: string;
}

export function protectedResourceMetadata(opts: Omit<MetadataOptions, 'resource' | 'gatewayIssuer'> & { resource: string }): Record<string, unknown> {
  const doc: Record<string, unknown> = { resource: opts.resource };
  if (opts.authorizationServers.length) doc.authorization_servers = [...opts.authorizationServers];
  if (opts.scopesSupported.length) doc.scopes_supported = [...opts.scopesSupported];
  doc.bearer_methods_supported = ['header'];
  return doc;
}

const PUBLIC_JSON = {
  'content-type': 'application/json',
  'cache-control': 'public, max-age=300',
  // Browser clients (MCP Inspector) read these documents cross-origin; they hold nothing secret.
  'access-control-allow-origin': '*',
};

function methodNotAllowed(req: IncomingMessage): ServedResponse | undefined {
  if (req.method === 'GET' || req.method === 'HEAD') return undefined;
  return { status: 405, headers: { allow: 'GET, HEAD' }, body: { error: 'method_not_allowed' } };
}

export function metadataServes(route: RouteInfo, opts: MetadataOptions): Record<string, (req: IncomingMessage) => Promise<ServedResponse>> {
  const serves: Record<string, (req: IncomingMessage) => Promise<ServedResponse>> = {};
  const gatewayIssuer = opts.gatewayIssuer;
  if (opts.authorizationServers.length > 0 || gatewayIssuer) {
    const serveMetadata = async function serveProtectedResourceMetadata(req: IncomingMessage): Promise<ServedResponse> {
      const host = req.headers.host;
      const servers = [...(gatewayIssuer ? [gatewayIssuer(host)] : []), ...opts.authorizationServers];
      const doc = protectedResourceMetadata({ ...opts, authorizationServers: servers, resource: opts.resource.forHost(host) });
      return methodNotAllowed(req) ?? { status: 200, headers: PUBLIC_JSON, body: doc };
    };
    serves[routeMetadataPath(route)] = serveMetadata;
    serves[METADATA_PREFIX] = serveMetadata;
  } else {
    // Only the route's own address: the bare one stays free for a route that does have metadata.
    const body = {
      error: 'not_found',
      error_description: `This route has no OAuth authorization server, so there is no protected-resource metadata; send a bearer token.${opts.tokenHint ? ` ${opts.tokenHint}` : ''}`,
    };
    serves[routeMetadataPath(route)] = async function serveNoMetadata(req) {
      return methodNotAllowed(req) ?? { status: 404, headers: { ...PUBLIC_JSON, 'cache-control': 'no-store' }, body };
    };
  }
  const devDir = opts.devDir;
  if (devDir !== undefined) {
    serves['/.well-known/jwks.json'] = async function serveDevJwks(req) {
      return methodNotAllowed(req) ?? { status: 200, headers: PUBLIC_JSON, body: await readDevJwks(devDir) };
    };
  }
  return serves;
}
