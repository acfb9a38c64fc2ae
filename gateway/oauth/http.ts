/**
 * HTTP plumbing of the authorization server's endpoints: bounded form and JSON bodies, OAuth error
 * bodies (RFC 6749 §5.2, never JSON-RPC), `no-store` answers, redirects back to a client, cookies.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OAuthError } from './contracts.ts';
import { pagePolicy } from './csp.ts';

/** Token responses and errors must not be cached (RFC 6749 §5.1). */
export const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

/**
 * Browser clients (MCP Inspector, web apps) call the metadata, registration, token and revocation
 * endpoints cross-origin. None of them uses cookies or ambient credentials, so any origin may read
 * their answers; what protects them is PKCE, the code and the client's own credentials.
 */
export function openCors(req: IncomingMessage): Record<string, string> {
  return req.headers.origin ? { 'access-control-allow-origin': '*', 'access-control-expose-headers': 'www-authenticate' } : {};
}

export function preflight(res: ServerResponse): void {
  res.writeHead(204, {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': 'authorization, content-type, mcp-protocol-version, accept',
    'access-control-max-age': '600',
  });
  res.end();
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendOAuthError(res: ServerResponse, err: OAuthError, headers: Record<string, string> = {}): void {
  sendJson(res, err.status, err.toJSON(), { ...NO_STORE, ...headers });
}

export function sendHtml(res: ServerResponse, status: number, html: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    ...NO_STORE,
    // The pages are ours alone: no framing (clickjacking of the consent button), no scripts, no referrer
    // (the authorization request's URL carries the state and PKCE challenge). A page whose form ends in
    // a redirect to the client passes its own policy in `headers` (csp.ts).
    'content-security-policy': pagePolicy(),
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(html);
}

/** A redirect to a client's redirect URI (or to a sign-in provider). 303 after a POST, so it becomes a GET. */
export function redirect(res: ServerResponse, location: string, status = 302, headers: Record<string, string> = {}): void {
  res.writeHead(status, { location, 'content-length': 0, ...NO_STORE, 'referrer-policy': 'no-referrer', ...headers });
  res.end();
}

/** Reads a body of at most `limit` bytes; more is an OAuthError (and the rest is drained). */
export async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw new OAuthError('invalid_request', `the request body is larger than ${limit} bytes`, 413);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw new OAuthError('invalid_request', `the request body is larger than ${limit} bytes`, 413);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Parameters of a form body or query. A parameter sent twice is refused (RFC 6749 §3.1, §3.2): two
 * values can be read two ways, and a check may see one while the grant uses the other.
 */
export function singleParams(params: URLSearchParams): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of params) {
    if (out.has(k)) throw new OAuthError('invalid_request', `the parameter "${k}" is given more than once`);
    out.set(k, v);
  }
  return out;
}

export async function readForm(req: IncomingMessage, limit = 16_384): Promise<Map<string, string>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    req.resume();
    throw new OAuthError('invalid_request', 'send the parameters as application/x-www-form-urlencoded');
  }
  return singleParams(new URLSearchParams(await readBody(req, limit)));
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    if (!out.has(name)) out.set(name, part.slice(i + 1).trim());
  }
  return out;
}

/** The client's address, for the login guard (the socket's: a proxy's header is not trusted here). */
export function clientAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}
