/**
 * HS256 tokens for end-to-end tests through the real `token` + `jwt` plugins: one secret, one issuer,
 * one audience, and the route plugins that accept them.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';

export const JWT_SECRET = randomBytes(32).toString('base64url');
export const ISSUER = 'https://issuer.gateway.test';
export const AUDIENCE = 'mcp-gateway-test';
/** The `env` to give startTestGateway so `${JWT_SECRET}` resolves. */
export const GATEWAY_ENV = { JWT_SECRET };

type Source = 'header' | 'query';

/** The token and jwt plugins as flow-style YAML items, to put in a `plugins: [...]` list. */
export function authPluginItems(sources: readonly Source[] = ['header']): string {
  return `{ type: token, sources: [${sources.join(', ')}] }, { type: jwt, keys: { secret: "\${JWT_SECRET}" }, algorithms: [HS256], issuer: ${ISSUER}, audience: ${AUDIENCE} }`;
}

/** A whole flow-style YAML list, for `plugins: ${authPlugins()}`, accepting these tokens. */
export function authPlugins(sources: readonly Source[] = ['header']): string {
  return `[${authPluginItems(sources)}]`;
}

export function tokenFor(tenant: string, opts: { sub?: string; scope?: string } = {}): Promise<string> {
  return new SignJWT({ tenant_id: tenant, ...(opts.scope ? { scope: opts.scope } : {}) })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(opts.sub ?? `user-of-${tenant}`)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(JWT_SECRET));
}
