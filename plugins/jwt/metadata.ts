/**
 * What an MCP client reads to learn how to authenticate: RFC 9728 protected-resource metadata, at the
 * path-inserted address of the route (clients try it first) and at the bare well-known address, and the
 * development issuer's public keys.
 *
 * `bearer_methods_supported` is always `["header"]`: the `?token=` listener is a deliberate exception
 * for header-less clients and must not invite anyone else to put tokens in URLs.
 */
import type { IncomingMessage } from 'node:http';
import type { RouteInfo, ServedResponse } from '../../gateway/contract.ts';
import { METADATA_PREFIX, routeMetadataPath } from './challenge.ts';
import { readDevJwks } from './dev-keys.ts';

export interface MetadataOptions {
  /** The resource identifier (also the default audience). */
  resource: string;
  authorizationServers: readonly string[];
  scopesSupported: readonly string[];
  /** Folder of the development issuer's keys, to serve `/.well-known/jwks.json`. */
  devDir?: string;
}

/** The resource identifier of a route: its public URL, e.g. `http://localhost:3001/mcp`. */
export function defaultResource(route: RouteInfo): string {
  return route.listener.publicUrl.replace(/\/+$/, '') + (route.path === '/' ? '' : route.path.replace(/\/+$/, ''));
}

export function protectedResourceMetadata(opts: MetadataOptions): Record<string, unknown> {
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
  const doc = protectedResourceMetadata(opts);
  const serveMetadata = async function serveProtectedResourceMetadata(req: IncomingMessage): Promise<ServedResponse> {
    return methodNotAllowed(req) ?? { status: 200, headers: PUBLIC_JSON, body: doc };
  };
  const serves: Record<string, (req: IncomingMessage) => Promise<ServedResponse>> = {
    [routeMetadataPath(route)]: serveMetadata,
    [METADATA_PREFIX]: serveMetadata,
  };
  const devDir = opts.devDir;
  if (devDir !== undefined) {
    serves['/.well-known/jwks.json'] = async function serveDevJwks(req) {
      return methodNotAllowed(req) ?? { status: 200, headers: PUBLIC_JSON, body: await readDevJwks(devDir) };
    };
  }
  return serves;
}
